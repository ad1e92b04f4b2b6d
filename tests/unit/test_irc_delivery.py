"""What the IRC side does so that nothing is lost in silence: dead links noticed
within `ping_timeout`, relayed lines confirmed by the server and sent again after a
reconnect, stale backlogs replaced by one line, and gaps in what we heard said."""

import asyncio
import math
import socket
import time

import pytest

from bridge.config_types import FloodConfig
from bridge.core.events import BRIDGE, Endpoint, Message, MessageKind
from bridge.core.notices import gap_text, stale_text
from bridge.irc import joins as joins_module
from bridge.irc.adapter import IrcAdapter
from tests.servers.scripted_ircd import Recorder, ScriptedIrcd, running
from tests.unit.test_irc_scripted import CHAN, NET, joined, make_adapter, make_config, xmpp_msg


@pytest.fixture
async def ircd():
    server = await ScriptedIrcd().start()
    yield server
    await server.stop()


# Dead links


async def test_a_silent_link_is_dead_after_ping_timeout_of_silence(ircd):
    timeout = 6.0
    adapter, _ = make_adapter(ircd.port, ping_timeout=timeout)
    loop = asyncio.get_running_loop()
    async with running(adapter):
        first = await joined(ircd)
        first.silent = True  # a black hole: reads everything, answers nothing
        silent_at = loop.time()
        await first.expect("PING", timeout=timeout, after=len(first.received))
        pinged_at = loop.time()
        await asyncio.wait_for(first.closed.wait(), timeout + 3)
        dead_at = loop.time()
        await joined(ircd, 1)  # and a new connection
    assert timeout / 2 - 0.5 <= pinged_at - silent_at <= timeout / 2 + 1
    assert timeout - 1 <= dead_at - silent_at <= timeout + 1.5


async def test_a_quiet_link_that_answers_pings_stays_up(ircd):
    adapter, _ = make_adapter(ircd.port, ping_timeout=1.0)
    async with running(adapter):
        client = await joined(ircd)
        await asyncio.sleep(3.0)  # three timeouts without a word from anyone but the PONGs
        assert len(client.lines("PING")) >= 3
        assert len(ircd.clients) == 1 and not client.closed.is_set()


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="Linux socket option")
async def test_the_kernel_gives_up_on_unacknowledged_data_within_ping_timeout(ircd):
    adapter, _ = make_adapter(ircd.port, ping_timeout=20)
    async with running(adapter):
        await joined(ircd)
        sock = adapter.client.conn.transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 20_000
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10


# Acknowledged delivery


def privmsgs(client):
    return [line.removeprefix(f"PRIVMSG {CHAN} :<alice> ") for line in client.lines("PRIVMSG")]


async def test_lines_never_confirmed_are_sent_again_after_a_reconnect_once(ircd):
    adapter, _ = make_adapter(ircd.port)
    async with running(adapter):
        first = await joined(ircd)
        first.pongs = False  # takes the lines, but never confirms them
        for i in range(3):
            await adapter.deliver(CHAN, xmpp_msg(f"unconfirmed {i}"))
        last = await first.expect(f"PRIVMSG {CHAN} :<alice> unconfirmed 2")
        await first.expect("PING :", after=first.received.index(last))
        first.close()
        await adapter.deliver(CHAN, xmpp_msg("while away"))
        second = await joined(ircd, 1)
        await second.expect(f"PRIVMSG {CHAN} :<alice> while away")
        assert privmsgs(second) == ["unconfirmed 0", "unconfirmed 1", "unconfirmed 2", "while away"]
        order = second.received.index
        assert order(second.lines("PRIVMSG")[0]) > order(second.lines("JOIN")[0])  # after the rejoin
        # Confirmed this time: never again.
        async with asyncio.timeout(5):
            while adapter.client.outbox.unconfirmed:
                await asyncio.sleep(0.02)
        second.close()
        third = await joined(ircd, 2)
        await adapter.deliver(CHAN, xmpp_msg("third time"))
        await third.expect(f"PRIVMSG {CHAN} :<alice> third time")
        assert privmsgs(third) == ["third time"]


async def test_lines_confirmed_by_the_server_are_not_sent_again(ircd):
    adapter, _ = make_adapter(ircd.port)
    async with running(adapter):
        first = await joined(ircd)
        for i in range(3):
            await adapter.deliver(CHAN, xmpp_msg(f"confirmed {i}"))
        last = await first.expect(f"PRIVMSG {CHAN} :<alice> confirmed 2")
        await first.expect("PING :", after=first.received.index(last))
        async with asyncio.timeout(5):
            while adapter.client.outbox.unconfirmed:
                await asyncio.sleep(0.02)
        first.close()
        second = await joined(ircd, 1)
        await adapter.deliver(CHAN, xmpp_msg("after"))
        await second.expect(f"PRIVMSG {CHAN} :<alice> after")
        assert privmsgs(first) == ["confirmed 0", "confirmed 1", "confirmed 2"]
        assert privmsgs(second) == ["after"]


# Bounded age


async def test_a_backlog_older_than_max_age_becomes_one_notice(ircd):
    config = make_config(ircd.port, flood=FloodConfig(burst=2, interval=0.25))
    adapter = IrcAdapter(config, Recorder(), max_age=1.0)
    adapter.add_endpoint(CHAN, {})
    async with running(adapter):
        client = await joined(ircd)
        for i in range(20):  # 5 s at flood pace: most of it waits longer than a second
            await adapter.deliver(CHAN, xmpp_msg(f"backlog {i}"))
        notice = await client.expect(f"NOTICE {CHAN} :", timeout=5)
        await adapter.deliver(CHAN, xmpp_msg("live"))
        await client.expect(f"PRIVMSG {CHAN} :<alice> live")
        sent = privmsgs(client)
        assert 2 <= len(sent) - 1 < 20 and sent == [f"backlog {i}" for i in range(len(sent) - 1)] + ["live"]
        assert notice == f"NOTICE {CHAN} :" + stale_text(21 - len(sent), ["xmpp/room@muc"], 1.0)
        assert client.received.index(notice) < client.received.index(f"PRIVMSG {CHAN} :<alice> live")
        assert len(client.lines("NOTICE")) == 1


# Gaps


def gaps(events):
    return [e for e in events.of(Message) if e.sender == BRIDGE]


def says_gap(event, room, since, until):
    """`event` is the bridge's notice that `room` was not heard from about `since` to
    about `until` (each within a second: the notice shows whole seconds)."""
    assert event.endpoint == Endpoint(NET, room) and event.kind is MessageKind.NOTICE
    texts = {gap_text(f"{NET}/{room}", s, u)
             for s in range(math.floor(since) - 1, math.ceil(since) + 1)
             for u in range(math.floor(until) - 1, math.ceil(until) + 1)}
    return event.text in texts


async def test_a_rejoin_after_a_kick_says_once_what_may_be_missing(ircd, monkeypatch):
    monkeypatch.setattr(joins_module, "REJOIN_AFTER_KICK", 1.0)
    adapter, events = make_adapter(ircd.port)
    async with running(adapter):
        client = await joined(ircd)
        client.send(":bob!b@h PRIVMSG #test :heard")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "heard")
        assert gaps(events) == []  # not on the first join
        kicked = time.time()
        client.send(":op!o@h KICK #test xbridge :out")
        await client.expect("JOIN #test", after=len(client.received))
        gap = await events.wait_for(lambda e: e in gaps(events))
        assert says_gap(gap, CHAN, kicked, time.time())
        client.send(":xbridge!~xbridge@127.0.0.1 JOIN #test")  # the server says it again
        client.send(":bob!b@h PRIVMSG #test :marker")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "marker")
        assert len(gaps(events)) == 1


async def test_a_lost_link_leaves_a_gap_from_the_last_byte_heard_in_each_channel(ircd):
    adapter, events = make_adapter(ircd.port, rooms=(CHAN, "#other"), ping_timeout=2.0)
    async with running(adapter):
        first = await joined(ircd, 0, (CHAN, "#other"))
        first.silent = True
        silent = time.time()
        second = await joined(ircd, 1, (CHAN, "#other"))
        await events.wait_for(lambda e: len(gaps(events)) == 2)
        rejoined = time.time()
        second.send(":bob!b@h PRIVMSG #test :marker")
        await events.wait_for(lambda e: isinstance(e, Message) and e.text == "marker")
    found = gaps(events)
    assert sorted(g.endpoint.room for g in found) == sorted([CHAN, "#other"])
    assert all(says_gap(g, g.endpoint.room, silent, rejoined) for g in found)
    assert rejoined - silent >= 2.0  # the notice starts at the silence, not at the reconnect


# Shutdown


async def test_lines_queued_behind_flood_control_go_out_before_the_quit(ircd):
    adapter, _ = make_adapter(ircd.port, flood=FloodConfig(burst=1, interval=0.2))
    task = asyncio.create_task(adapter.run())
    client = await joined(ircd)
    for n in range(4):
        await adapter.deliver(CHAN, xmpp_msg(f"queued {n}"))
    await adapter.close()
    await asyncio.wait_for(client.closed.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    said = [line for line in client.received if line.startswith("PRIVMSG")]
    assert [line.rpartition("queued ")[2] for line in said] == ["0", "1", "2", "3"]
    assert client.received[-1].startswith("QUIT")


async def test_a_connection_closed_at_shutdown_is_not_opened_again(ircd):
    """Other networks may take seconds to close: in the meantime the relay must not come back
    (it would join every channel, then drop without a QUIT when the bridge exits)."""
    adapter, _ = make_adapter(ircd.port)
    task = asyncio.create_task(adapter.run())
    client = await joined(ircd)
    await adapter.close()
    await asyncio.wait_for(client.closed.wait(), 5)
    await asyncio.sleep(2.5)  # past the first reconnect's delay (0.5-1 s) and its registration
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert client.received[-1].startswith("QUIT")
    assert len(ircd.clients) == 1
