"""Outgoing queue: control lines first, relayed lines bounded with drop-oldest, all paced;
relayed lines kept until a PING barrier's PONG confirms them, and none delivered stale."""

import asyncio
import time

from structlog.testing import capture_logs

from bridge.core.notices import stale_text
from bridge.core.ratelimit import TokenBucket
from bridge.irc.outbox import BARRIER_LINES, BARRIER_LINGER, Outbox


def notice(room, text):
    return [f"NOTICE {room} :{text}"]


def outbox(size=10, burst=100, interval=0.0, max_age=300.0):
    return Outbox(TokenBucket(burst, interval), size, "testnet", notice=notice, max_age=max_age)


def paced_outbox(burst, interval):
    """An outbox whose bucket runs on a fake clock (`now[0]`), which its waits move on."""
    now = [0.0]

    async def fake_sleep(seconds):
        now[0] += seconds
        await asyncio.sleep(0)

    return Outbox(TokenBucket(burst, interval, clock=lambda: now[0], sleep=fake_sleep), 10, "testnet",
                  notice=notice), now


def put(box, lines, room="#c", when=None):
    return box.put(lines, room, "xmpp/room@muc", when)


def relayed(written):
    """What was written, without the barriers."""
    return [line for line in written if not line.startswith("PING :")]


async def drain(box, written, until):
    task = asyncio.create_task(box.run(written.append))
    try:
        async with asyncio.timeout(2):
            while len(written) < until:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # and nothing more arrives
    finally:
        task.cancel()


async def test_relayed_lines_wait_until_open_control_lines_do_not():
    box, written = outbox(), []
    put(box, ["PRIVMSG #c :hi"])
    box.control("CAP LS 302")
    await drain(box, written, 1)
    assert written == ["CAP LS 302"]
    box.open()
    await drain(box, written, 2)
    assert relayed(written) == ["CAP LS 302", "PRIVMSG #c :hi"]


async def test_control_lines_jump_the_queue():
    box, written = outbox(), []
    box.open()
    put(box, [f"PRIVMSG #c :{i}" for i in range(3)])
    box.control("PONG :x")
    await drain(box, written, 4)
    assert written[0] == "PONG :x"


async def test_full_queue_drops_the_oldest_and_says_so():
    box = outbox(size=3)
    first = put(box, ["PRIVMSG #c :1", "PRIVMSG #c :2"])
    with capture_logs() as logs:
        put(box, ["PRIVMSG #c :3", "PRIVMSG #c :4", "PRIVMSG #c :5"])
    assert [line for line, _ in box._text] == ["PRIVMSG #c :3", "PRIVMSG #c :4", "PRIVMSG #c :5"]
    assert first.done()  # its lines were dropped: nobody waits for them forever
    overflow = [entry for entry in logs if entry["event"] == "irc_queue_overflow"]
    assert overflow and overflow[0]["dropped"] == 2 and overflow[0]["dropped_total"] == 2
    assert box.dropped == 2


async def test_lost_connection_keeps_relayed_lines_and_releases_waiters():
    box = outbox()
    box.control("JOIN #c")
    waiting = put(box, ["PRIVMSG #c :later"])
    box.connection_lost()
    assert waiting.done()
    written = []
    box.open()
    await drain(box, written, 1)
    assert relayed(written) == ["PRIVMSG #c :later"]


async def test_the_waiter_is_done_when_its_last_line_is_written():
    box, written = outbox(), []
    box.open()
    done = put(box, ["PRIVMSG #c :a", "PRIVMSG #c :b"])
    assert not done.done()
    await drain(box, written, 2)
    assert done.done()


async def test_a_refused_line_does_not_stop_the_writer():
    box, written = outbox(), []
    box.open()

    def write(line):
        if "bad" in line:
            raise ValueError("CR, LF or NUL")
        written.append(line)

    put(box, ["PRIVMSG #c :bad", "PRIVMSG #c :good"])
    task = asyncio.create_task(box.run(write))
    async with asyncio.timeout(2):
        while not written:
            await asyncio.sleep(0.01)
    task.cancel()
    assert relayed(written) == ["PRIVMSG #c :good"]


async def test_a_refused_line_still_ends_its_waiter():
    box = outbox()
    box.open()
    done = put(box, ["PRIVMSG #c :bad"])

    def write(line):
        raise ValueError("CR, LF or NUL")

    task = asyncio.create_task(box.run(write))
    try:
        async with asyncio.timeout(2):
            await done
    finally:
        task.cancel()


async def test_with_nothing_queued_a_line_is_written_at_once_and_its_barrier_follows():
    box, written = outbox(), []
    box.open()
    task = asyncio.create_task(box.run(written.append))
    await asyncio.sleep(0)  # the writer is waiting
    done = put(box, ["PRIVMSG #c :now"])
    assert written == ["PRIVMSG #c :now"] and done.done()  # in put itself, no writer wake-up
    try:
        async with asyncio.timeout(2):
            while not pings(written):
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(pings(written)) == 1


async def test_lines_written_at_once_still_get_a_barrier_every_32():
    box, written = outbox(size=10), []
    box.open()
    task = asyncio.create_task(box.run(written.append))
    await asyncio.sleep(0)
    try:
        for i in range(100):  # more than the queue holds, all in one loop turn
            put(box, [f"PRIVMSG #c :{i}"])
    finally:
        task.cancel()
    assert relayed(written) == [f"PRIVMSG #c :{i}" for i in range(100)]
    assert len(pings(written)) == 100 // BARRIER_LINES and box.dropped == 0
    assert written.index("PRIVMSG #c :32") == BARRIER_LINES + 1  # right after the first barrier


async def test_a_writer_that_ends_after_the_next_one_started_leaves_it_in_place():
    box, old, new = outbox(), [], []
    box.open()
    first = asyncio.create_task(box.run(old.append))
    await asyncio.sleep(0)
    second = asyncio.create_task(box.run(new.append))  # the next connection's writer
    first.cancel()  # the old one ends only after the new one has started
    await asyncio.gather(first, return_exceptions=True)
    try:
        put(box, ["PRIVMSG #c :x"])
        assert new == ["PRIVMSG #c :x"] and old == []  # at once, on the new connection
    finally:
        second.cancel()


async def test_a_line_never_overtakes_queued_ones():
    box, _ = paced_outbox(burst=1, interval=2.0)
    written = []
    box.open()
    task = asyncio.create_task(box.run(written.append))
    await asyncio.sleep(0)
    put(box, ["PRIVMSG #c :1", "PRIVMSG #c :2"])  # the first at once, the second waits for a token
    put(box, ["PRIVMSG #c :3"])
    held = asyncio.Event()
    box.gate = lambda room: room != "#held"
    box.held = lambda room: held.set()
    try:
        async with asyncio.timeout(2):
            while len(relayed(written)) < 3:
                await asyncio.sleep(0.01)
        put(box, ["PRIVMSG #held :4"], room="#held")  # its channel not joined yet: queued
        put(box, ["PRIVMSG #c :5"])  # and so behind it
        await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert relayed(written) == ["PRIVMSG #c :1", "PRIVMSG #c :2", "PRIVMSG #c :3"]
    assert held.is_set() and len(box) == 2


async def test_every_line_waits_for_the_bucket():
    box, now = paced_outbox(burst=2, interval=2.0)
    sent = []
    box.open()
    put(box, ["PRIVMSG #c :1", "PRIVMSG #c :2", "PRIVMSG #c :3"])
    box.control("PONG :x")
    task = asyncio.create_task(box.run(lambda line: sent.append((now[0], line))))
    async with asyncio.timeout(2):
        while len(sent) < 4:
            await asyncio.sleep(0.01)
    task.cancel()
    assert sent == [(0.0, "PONG :x"), (0.0, "PRIVMSG #c :1"), (2.0, "PRIVMSG #c :2"), (4.0, "PRIVMSG #c :3")]


# Acknowledged delivery


def pings(written):
    return [line.removeprefix("PING :") for line in written if line.startswith("PING :")]


async def writing(box, written, until):
    """Run the writer until `until(written)` holds; leave it running."""
    task = asyncio.create_task(box.run(written.append))
    async with asyncio.timeout(2):
        while not until(written):
            await asyncio.sleep(0.01)
    return task


async def test_one_barrier_follows_a_batch_once_the_queue_is_dry():
    box, written = outbox(), []
    box.open()
    put(box, ["PRIVMSG #c :1", "PRIVMSG #c :2"])
    put(box, ["PRIVMSG #c :3"])
    task = await writing(box, written, lambda w: pings(w))
    await asyncio.sleep(BARRIER_LINGER * 2)
    task.cancel()
    assert written[:3] == ["PRIVMSG #c :1", "PRIVMSG #c :2", "PRIVMSG #c :3"]
    assert len(written) == 4 and len(pings(written)) == 1
    assert box.unconfirmed == 3


async def test_a_long_drain_gets_a_barrier_every_32_lines_with_random_tokens():
    box, written = outbox(size=100), []
    box.open()
    put(box, [f"PRIVMSG #c :{i}" for i in range(70)])
    task = await writing(box, written, lambda w: len(pings(w)) == 3)
    task.cancel()
    at = [i for i, line in enumerate(written) if line.startswith("PING :")]
    assert at == [BARRIER_LINES, 2 * BARRIER_LINES + 1, 72]
    tokens = pings(written)
    assert len(set(tokens)) == 3 and all(len(t) == 16 and int(t, 16) >= 0 for t in tokens)


async def test_a_pong_confirms_every_line_before_its_ping_and_those_are_never_resent():
    box, written = outbox(size=100), []
    box.open()
    put(box, [f"PRIVMSG #c :{i}" for i in range(40)])
    task = await writing(box, written, lambda w: len(pings(w)) == 2)
    first, second = pings(written)
    box.confirm("not-a-token-we-sent")
    assert box.unconfirmed == 40
    box.confirm(first)
    assert box.unconfirmed == 40 - BARRIER_LINES
    put(box, ["PRIVMSG #c :late"])
    await asyncio.sleep(0.05)
    box.connection_lost()  # the second PONG never came; "late" had no barrier yet
    task.cancel()
    assert box.unconfirmed == 0
    resent = []
    box.open()
    await drain(box, resent, 9)
    assert relayed(resent) == [f"PRIVMSG #c :{i}" for i in range(BARRIER_LINES, 40)] + ["PRIVMSG #c :late"]


async def test_a_later_pong_confirms_earlier_barriers_too():
    box, written = outbox(size=100), []
    box.open()
    put(box, [f"PRIVMSG #c :{i}" for i in range(40)])
    task = await writing(box, written, lambda w: len(pings(w)) == 2)
    task.cancel()
    box.confirm(pings(written)[1])
    box.confirm(pings(written)[0])  # late, and already covered
    assert box.unconfirmed == 0 and box._barriers == {}


async def test_unconfirmed_lines_go_out_first_on_the_next_connection_in_their_order():
    box, written = outbox(), []
    box.open()
    put(box, ["PRIVMSG #c :1", "PRIVMSG #c :2"])
    task = await writing(box, written, lambda w: pings(w))
    task.cancel()
    box.connection_lost()
    put(box, ["PRIVMSG #c :3"])
    box.control("JOIN #c")
    again = []
    await drain(box, again, 1)
    assert again == ["JOIN #c"]  # not before the rejoin
    box.open()
    await drain(box, again, 4)
    assert relayed(again) == ["JOIN #c", "PRIVMSG #c :1", "PRIVMSG #c :2", "PRIVMSG #c :3"]


async def test_a_write_that_fails_keeps_the_line_for_the_next_connection():
    box, written = outbox(), []
    box.open()

    def write(line):
        raise ConnectionResetError

    put(box, ["PRIVMSG #c :1"])
    task = asyncio.create_task(box.run(write))
    async with asyncio.timeout(2):
        while box.unconfirmed == 0:
            await asyncio.sleep(0.01)
    task.cancel()
    box.connection_lost()
    box.open()
    await drain(box, written, 1)
    assert relayed(written) == ["PRIVMSG #c :1"]


async def test_the_unconfirmed_window_is_bounded_and_its_overflow_counted():
    box, written = outbox(size=3), []
    box.open()
    with capture_logs() as logs:
        for i in range(5):
            put(box, [f"PRIVMSG #c :{i}"])
            task = await writing(box, written, lambda w, n=i + 1: len(relayed(w)) == n)
            task.cancel()
    assert box.unconfirmed == 3 and box.forgotten == 2
    assert [e["forgotten_total"] for e in logs if e["event"] == "irc_unconfirmed_overflow"] == [1, 2]
    box.connection_lost()
    assert [line for line, _ in box._text] == ["PRIVMSG #c :2", "PRIVMSG #c :3", "PRIVMSG #c :4"]


async def test_a_keepalive_ping_is_a_barrier_too():
    box, written = outbox(), []
    box.open()
    put(box, ["PRIVMSG #c :1"])
    box.ping()
    task = await writing(box, written, lambda w: len(w) == 2)
    task.cancel()
    assert written[0].startswith("PING :") and written[1] == "PRIVMSG #c :1"
    box.confirm(pings(written)[0])
    assert box.unconfirmed == 1  # written after that PING: not confirmed by it


# Bounded age


async def test_stale_lines_are_dropped_and_said_once_per_channel_and_run():
    box, written = outbox(max_age=60.0), []
    old, now = time.time() - 120, time.time()
    put(box, ["PRIVMSG #a :old 1", "PRIVMSG #a :old 1, line 2"], "#a", old)
    put(box, ["PRIVMSG #b :old"], "#b", old)
    put(box, ["PRIVMSG #a :old 2"], "#a", old)
    put(box, ["TOPIC #a :late topic"], "#a", None)  # never too old, and ends #a's run
    put(box, ["PRIVMSG #a :fresh"], "#a", now)
    with capture_logs() as logs:
        box.open()
        await drain(box, written, 4)
    assert relayed(written) == [
        "NOTICE #a :" + stale_text(2, ["xmpp/room@muc"], 60.0),
        "TOPIC #a :late topic",
        "PRIVMSG #a :fresh",
        "NOTICE #b :" + stale_text(1, ["xmpp/room@muc"], 60.0),  # the queue ran dry
    ]
    assert box.stale == 3
    said = [(e["room"], e["count"]) for e in logs if e["event"] == "irc_stale_dropped"]
    assert said == [("#a", 2), ("#b", 1)]
