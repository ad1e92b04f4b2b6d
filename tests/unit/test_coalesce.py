"""Writes gathered per loop turn: in order, the first to a quiet connection at once, the
rest of its turn and of a burst at the turn's end (early for long bursts)."""

import asyncio

from bridge.core.coalesce import IDLE, Coalescer


async def test_the_first_write_of_a_turn_goes_at_once_the_rest_at_its_end_in_order():
    written = []
    writes = Coalescer(written.append)
    writes.add(b"a")
    assert written == [b"a"]  # a lone message waits for no other
    writes.add(b"b")
    writes.add(b"c")
    assert written == [b"a"]
    await asyncio.sleep(0)
    assert written == [b"a", b"bc"]
    await asyncio.sleep(0)
    writes.add(b"d")  # the next turn, right after: a burst, gathered
    assert written == [b"a", b"bc"]
    await asyncio.sleep(0)
    assert written == [b"a", b"bc", b"d"]
    await asyncio.sleep(IDLE * 2)
    writes.add(b"e")  # quiet again: at once
    assert written == [b"a", b"bc", b"d", b"e"]


async def test_past_the_limit_it_writes_at_once_and_keeps_the_order():
    written = []
    writes = Coalescer(written.append, limit=10)
    for n in range(25):
        writes.add(b"%02d" % n)
    assert written[0] == b"00" and [len(w) for w in written[1:]] == [10] * 4  # before the turn ends
    await asyncio.sleep(0)
    assert b"".join(written) == b"".join(b"%02d" % n for n in range(25))


async def test_clear_forgets_what_was_gathered():
    written = []
    writes = Coalescer(written.append)
    writes.add(b"this turn's first")
    writes.add(b"for the old connection")
    writes.clear()
    await asyncio.sleep(0)
    assert written == [b"this turn's first"] and writes.size == 0
