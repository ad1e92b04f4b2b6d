"""The fault harness's counting, without servers: what is lost, duplicated, excused."""

from __future__ import annotations

import time

import pytest

from bridge.core.notices import gap_text
from tests.faults.harness import IRC, XMPP, FaultRun, Notice, _notice_span

pytestmark = pytest.mark.faults


def run_with(tmp_path, *sends: tuple[str, bool, dict[str, int]], notices: tuple[Notice, ...] = ()):
    """A run (never started) whose ledger holds `sends`: (origin, confirmed, {network: copies});
    the fault lasted from 10 s to 5 s ago."""
    run = FaultRun("counting", tmp_path)
    now = time.time()
    run.fault = (IRC, now - 10, now - 5)
    for origin, confirmed, copies in sends:
        record, _ = run.ledger.next_text(origin)
        record.sent = now - 8
        record.confirmed = now - 8 if confirmed else None
        for network, n in copies.items():
            record.live[network] = [now - 7] * n
    run.ledger.notices.extend(notices)
    return run._result(now - 5)


def direction(result, origin: str, dest: str):
    return next(d for d in result.directions if (d.origin, d.dest) == (origin, dest))


def test_arrived_once_is_delivered_twice_is_duplicated(tmp_path):
    result = run_with(tmp_path, (XMPP, True, {IRC: 1}), (XMPP, True, {IRC: 2}))
    d = direction(result, XMPP, IRC)
    assert (d.counted, d.lost, d.duplicated) == (2, [], [2])


def test_unconfirmed_messages_do_not_count(tmp_path):
    d = direction(run_with(tmp_path, (IRC, False, {})), IRC, XMPP)
    assert (d.counted, d.unconfirmed, d.lost) == (0, 1, [])


def test_a_message_that_arrived_nowhere_is_lost_unless_a_notice_covers_it(tmp_path):
    assert direction(run_with(tmp_path, (IRC, True, {})), IRC, XMPP).lost == [1]
    now = time.time()
    notice = Notice(XMPP, now - 4, gap_text(f"{IRC}/#room", now - 11, now - 6))
    d = direction(run_with(tmp_path, (IRC, True, {}), notices=(notice,)), IRC, XMPP)
    assert (d.counted, d.excused, d.lost) == (0, 1, [])


def test_a_notice_about_another_network_or_another_time_excuses_nothing(tmp_path):
    now = time.time()
    other = Notice(IRC, now - 4, gap_text(f"{XMPP}/room@muc.localhost", now - 11, now - 6))
    earlier = Notice(XMPP, now - 4, gap_text(f"{IRC}/#room", now - 60, now - 30))
    for notice in (other, earlier):
        assert direction(run_with(tmp_path, (IRC, True, {}), notices=(notice,)), IRC, XMPP).lost == [1]


def test_the_bridge_notice_times_are_read(tmp_path):
    now = time.time()
    since, until = _notice_span(Notice(XMPP, now, gap_text("irc/#room", now - 30, now - 3)),
                                fallback=(0, 0))
    assert since == int(now - 30) and until == int(now - 3) + 1
