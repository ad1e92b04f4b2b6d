"""Joining many IRC channels on a fake clock: JOIN lines paced and batched, relayed lines
held until their channel's JOIN has gone, CHANLIMIT said once, 405 not retried in a loop."""

import asyncio

from structlog.testing import capture_logs

from bridge.irc import joins as joins_module
from bridge.irc.joins import JOIN_BURST, JOIN_INTERVAL, JOIN_LINE, MOTD_WAIT, REJOIN_INTERVAL, Joins
from bridge.irc.outbox import Outbox
from bridge.core.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(channels, clock=None):
    clock = clock or Clock()
    sent: list[str] = []
    inside: set[str] = set()
    joins = Joins("net", sent.append, inside.__contains__, clock=clock)
    for channel in channels:
        joins.add(channel)
    joins.registered()
    return joins, sent, inside, clock


def channels_of(lines):
    return [c for line in lines for c in line.removeprefix("JOIN ").split(",")]


def run_for(joins, clock, seconds, step=0.25):
    """Tick every `step` seconds of fake time; the times at which lines went out."""
    times = []
    end = clock.now + seconds
    while clock.now < end:
        if joins.tick():
            times.append(clock.now)
        clock.now += step
    return times


def test_joins_wait_for_the_end_of_the_motd_then_go_at_once():
    joins, sent, _, clock = make(["#a", "#b"])
    assert not joins.tick() and sent == []  # ISUPPORT may still be coming
    joins.motd_done()
    assert joins.tick()
    assert sent == ["JOIN #a,#b"]


def test_without_an_end_of_motd_joins_start_after_a_while():
    joins, sent, _, clock = make(["#a"])
    clock.now += MOTD_WAIT - 0.1
    assert not joins.tick()
    clock.now += 0.2
    assert joins.tick() and sent == ["JOIN #a"]


def test_many_channels_go_several_per_line_a_burst_then_one_line_per_interval():
    channels = [f"#channel-{n:03}" for n in range(500)]
    joins, sent, _, clock = make(channels)
    joins.motd_done()
    times = run_for(joins, clock, REJOIN_INTERVAL - 1)  # none retried yet
    assert channels_of(sent) == channels  # all of them, once each, in config order
    assert all(len(line) <= len("JOIN ") + JOIN_LINE for line in sent)
    assert len(sent) < 500 / 20  # several per line
    start = times[0]
    # The first burst at once, then one line per interval: the server's penalty never
    # grows past the burst (InspIRCd: 2 s per JOIN line against a 10 s threshold).
    for n, line_time in enumerate(times):
        assert line_time - start >= max(0, n - JOIN_BURST + 1) * JOIN_INTERVAL - 1e-9
    assert times[-1] - start <= (len(sent) - JOIN_BURST + 1) * JOIN_INTERVAL + 0.25


def test_targmax_bounds_the_channels_per_line():
    joins, sent, _, clock = make([f"#c{n}" for n in range(10)])
    joins.isupport(["TARGMAX=PRIVMSG:4,JOIN:3,NAMES:1"])
    joins.motd_done()
    run_for(joins, clock, 10)
    assert [len(line.split(",")) for line in sent] == [3, 3, 3, 1]


def test_relayed_lines_wait_for_their_channel_s_join_which_then_goes_first():
    channels = [f"#c{n}-{'x' * 90}" for n in range(40)]  # 4 per line
    joins, sent, _, clock = make(channels)
    joins.motd_done()
    joins.tick()  # the burst: the first 12
    assert joins.may_send(channels[0]) and not joins.may_send(channels[-1])
    assert joins.may_send("alice")  # not a linked channel: a private message's nick
    joins.hurry(channels[-1])
    clock.now += JOIN_INTERVAL
    joins.tick()
    assert sent[-1].startswith("JOIN " + channels[-1] + ",")
    assert joins.may_send(channels[-1])


def test_a_channel_not_joined_is_tried_again_after_the_rejoin_interval_only():
    joins, sent, inside, clock = make(["#in", "#banned"])
    joins.motd_done()
    joins.tick()
    inside.add("#in")
    run_for(joins, clock, REJOIN_INTERVAL - 1)
    assert sent == ["JOIN #in,#banned"]
    run_for(joins, clock, 2)
    assert sent == ["JOIN #in,#banned", "JOIN #banned"]


def test_a_kicked_channel_is_joined_again_soon():
    joins, sent, inside, clock = make(["#a"])
    joins.motd_done()
    joins.tick()
    inside.add("#a")
    inside.discard("#a")
    joins.left("#a", kicked=True)
    run_for(joins, clock, joins_module.REJOIN_AFTER_KICK + 1)
    assert sent == ["JOIN #a", "JOIN #a"]


async def test_chanlimit_is_said_once_naming_the_channels_beyond_it():
    channels = [f"#c{n}" for n in range(25)] + ["&local"]
    with capture_logs() as logs:
        joins, sent, _, clock = make(channels)
        joins.isupport(["CHANTYPES=#&", "CHANLIMIT=#:20,&:5"])
        joins.registered()  # a reconnect: the same limit is not said again
        joins.isupport(["CHANLIMIT=#:20,&:5"])
    warnings = [e for e in logs if e["event"] == "irc_channel_limit"]
    assert len(warnings) == 1
    assert warnings[0]["network"] == "net" and warnings[0]["limit"] == 20
    assert warnings[0]["rooms"] == [f"#c{n}" for n in range(20, 25)]
    # Still tried: InspIRCd advertises <channels:users> but enforces <connect:maxchans>.
    joins.motd_done()
    run_for(joins, clock, 10)
    assert set(channels_of(sent)) == set(channels)


def test_no_limit_is_no_warning():
    with capture_logs() as logs:
        joins, *_ = make([f"#c{n}" for n in range(30)])
        joins.isupport(["CHANLIMIT=#&+:0"])  # ngIRCd with MaxJoins = 0
        joins.isupport(["CHANLIMIT=#:"])  # no number: no limit
        joins.isupport(["CHANLIMIT=#:x,&"])  # nonsense is skipped
    assert not [e for e in logs if e["event"] == "irc_channel_limit"]


async def test_channels_refused_as_too_many_are_logged_once_and_not_retried_until_one_is_left(
        monkeypatch):
    monkeypatch.setattr(joins_module, "REFUSALS_SETTLE", 0.01)
    joins, sent, inside, clock = make(["#a", "#b", "#c", "#d"])
    joins.motd_done()
    with capture_logs() as logs:
        joins.tick()
        inside.update({"#a", "#b"})
        joins.too_many("#c")
        joins.too_many("#d")
        await asyncio.sleep(0.05)
    refusals = [e for e in logs if e["event"] == "irc_too_many_channels"]
    assert len(refusals) == 1 and refusals[0]["rooms"] == ["#c", "#d"]
    assert refusals[0]["joined"] == 2
    run_for(joins, clock, 3 * REJOIN_INTERVAL)
    assert sent == ["JOIN #a,#b,#c,#d"]  # no JOIN/405 loop
    inside.discard("#a")
    joins.left("#a")
    run_for(joins, clock, 1)
    assert channels_of(sent[1:]) == ["#a", "#c", "#d"]


async def test_the_outbox_holds_a_channel_s_lines_until_its_join_without_reordering():
    waiting = {"#late"}
    hurried = []
    box = Outbox(TokenBucket(100, 0.0), 10, "net", notice=lambda room, text: [])
    box.gate = lambda room: room not in waiting
    box.held = hurried.append
    box.open()
    written: list[str] = []
    task = asyncio.create_task(box.run(written.append))
    try:
        box.put(["PRIVMSG #early :1"], "#early", "x")
        box.put(["PRIVMSG #late :2"], "#late", "x")
        box.put(["PRIVMSG #early :3"], "#early", "x")
        await asyncio.sleep(0.05)
        assert [w for w in written if not w.startswith("PING")] == ["PRIVMSG #early :1"]
        assert hurried and set(hurried) == {"#late"}
        waiting.clear()
        box.wake()
        await asyncio.sleep(0.05)
        assert [w for w in written if not w.startswith("PING")] == [
            "PRIVMSG #early :1", "PRIVMSG #late :2", "PRIVMSG #early :3"]
    finally:
        task.cancel()


def test_a_channel_linked_by_a_reload_joins_in_turn_and_an_unlinked_one_never_again():
    joins, sent, inside, clock = make(["#a", "#b"])
    joins.motd_done()
    joins.tick()
    inside.update({"#a", "#b"})
    joins.add("#new")
    joins.remove("#b")
    inside.discard("#b")
    assert not joins.may_send("#new")  # lines for it wait for its JOIN
    run_for(joins, clock, JOIN_INTERVAL)
    assert channels_of(sent) == ["#a", "#b", "#new"] and joins.may_send("#new")
    inside.add("#new")
    run_for(joins, clock, 3 * REJOIN_INTERVAL)
    assert channels_of(sent) == ["#a", "#b", "#new"]  # #b, left, is not joined again
