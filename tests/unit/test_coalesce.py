"""Writes gathered per loop turn: in order, one write per turn, early for long bursts."""

import asyncio

from bridge.core.coalesce import Coalescer


async def test_one_turn_one_write_in_order():
    written = []
    writes = Coalescer(written.append)
    writes.add(b"a")
    writes.add(b"b")
    assert written == []
    await asyncio.sleep(0)
    assert written == [b"ab"]
    await asyncio.sleep(0)
    assert written == [b"ab"]


async def test_past_the_limit_it_writes_at_once_and_keeps_the_order():
    written = []
    writes = Coalescer(written.append, limit=10)
    for n in range(25):
        writes.add(b"%02d" % n)
    assert written and all(len(w) == 10 for w in written)  # 5 writes, before the turn ends
    await asyncio.sleep(0)
    assert b"".join(written) == b"".join(b"%02d" % n for n in range(25))


async def test_clear_forgets_what_was_gathered():
    written = []
    writes = Coalescer(written.append)
    writes.add(b"for the old connection")
    writes.clear()
    await asyncio.sleep(0)
    assert written == [] and writes.size == 0
