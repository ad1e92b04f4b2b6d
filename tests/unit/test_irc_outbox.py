"""Outgoing queue: control lines first, relayed lines bounded with drop-oldest, all paced."""

import asyncio

from structlog.testing import capture_logs

from bridge.core.ratelimit import TokenBucket
from bridge.irc.outbox import Outbox


def outbox(size=10, burst=100, interval=0.0):
    return Outbox(TokenBucket(burst, interval), size, "testnet")


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
    box.put(["PRIVMSG #c :hi"])
    box.control("CAP LS 302")
    await drain(box, written, 1)
    assert written == ["CAP LS 302"]
    box.open()
    await drain(box, written, 2)
    assert written == ["CAP LS 302", "PRIVMSG #c :hi"]


async def test_control_lines_jump_the_queue():
    box, written = outbox(), []
    box.open()
    box.put([f"PRIVMSG #c :{i}" for i in range(3)])
    box.control("PONG :x")
    await drain(box, written, 4)
    assert written[0] == "PONG :x"


async def test_full_queue_drops_the_oldest_and_says_so():
    box = outbox(size=3)
    first = box.put(["PRIVMSG #c :1", "PRIVMSG #c :2"])
    with capture_logs() as logs:
        box.put(["PRIVMSG #c :3", "PRIVMSG #c :4", "PRIVMSG #c :5"])
    assert [line for line, _ in box._text] == ["PRIVMSG #c :3", "PRIVMSG #c :4", "PRIVMSG #c :5"]
    assert first.done()  # its lines were dropped: nobody waits for them forever
    overflow = [entry for entry in logs if entry["event"] == "irc_queue_overflow"]
    assert overflow and overflow[0]["dropped"] == 2 and overflow[0]["dropped_total"] == 2
    assert box.dropped == 2


async def test_lost_connection_keeps_relayed_lines_and_releases_waiters():
    box = outbox()
    box.control("JOIN #c")
    waiting = box.put(["PRIVMSG #c :later"])
    box.connection_lost()
    assert waiting.done()
    written = []
    box.open()
    await drain(box, written, 1)
    assert written == ["PRIVMSG #c :later"]


async def test_the_waiter_is_done_when_its_last_line_is_written():
    box, written = outbox(), []
    box.open()
    done = box.put(["PRIVMSG #c :a", "PRIVMSG #c :b"])
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

    box.put(["PRIVMSG #c :bad", "PRIVMSG #c :good"])
    task = asyncio.create_task(box.run(write))
    async with asyncio.timeout(2):
        while not written:
            await asyncio.sleep(0.01)
    task.cancel()
    assert written == ["PRIVMSG #c :good"]


async def test_every_line_waits_for_the_bucket():
    now = [0.0]

    async def fake_sleep(seconds):
        now[0] += seconds
        await asyncio.sleep(0)

    box = Outbox(TokenBucket(2, 2.0, clock=lambda: now[0], sleep=fake_sleep), 10, "testnet")
    sent = []
    box.open()
    box.put(["PRIVMSG #c :1", "PRIVMSG #c :2", "PRIVMSG #c :3"])
    box.control("PONG :x")
    task = asyncio.create_task(box.run(lambda line: sent.append((now[0], line))))
    async with asyncio.timeout(2):
        while len(sent) < 4:
            await asyncio.sleep(0.01)
    task.cancel()
    assert sent == [(0.0, "PONG :x"), (0.0, "PRIVMSG #c :1"), (2.0, "PRIVMSG #c :2"), (4.0, "PRIVMSG #c :3")]
