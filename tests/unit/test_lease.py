"""The lead among instances on one PostgreSQL store (bridge/store/lease.py), on a real server:
one leads, the other stands by and takes over when the leader lets go, dies or is cut off;
a leader's store writes stop landing once another leads."""

import asyncio
import itertools

import asyncpg
import pytest
import structlog

from bridge.store import lease as lease_module
from bridge.store import open_store
from bridge.store.lease import Lease

_databases = itertools.count(1)


@pytest.fixture
def url(postgres_server):
    return postgres_server.create_database(f"lease{next(_databases)}")


async def sql(url: str, query: str, *args):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def not_done(task: asyncio.Task, seconds: float) -> bool:
    await asyncio.wait({task}, timeout=seconds)
    return not task.done()


async def terminate(url: str, lease: Lease) -> None:
    """End the lease's lock session from the server's side (as a lost connection does)."""
    pid = lease._conn.get_server_pid()
    assert (await sql(url, "SELECT pg_terminate_backend($1)", pid))[0][0]


async def test_one_leads_the_other_stands_by_until_it_lets_go(url):
    first, second = Lease(url), Lease(url)
    assert await first.acquire() == 1
    waiting = asyncio.create_task(second.acquire())
    try:
        assert await not_done(waiting, 3 * lease_module.POLL)
        with structlog.testing.capture_logs() as logs:
            await first.release()
            assert await asyncio.wait_for(waiting, 10.0) == 2
        assert not [e for e in logs if e["event"] == "lead_settling"]  # released: no wait
        rows = await sql(url, "SELECT term, holder, released FROM lease")
        assert [tuple(r) for r in rows] == [(2, second.holder, False)]
    finally:
        waiting.cancel()
        await second.release()


async def test_a_leader_cut_off_steps_down_and_the_standby_takes_over(url, monkeypatch):
    leader, standby = Lease(url), Lease(url)
    await leader.acquire()
    paused: list[bool] = []
    held = asyncio.create_task(leader.hold(paused.append))
    waiting = asyncio.create_task(standby.acquire())
    try:
        assert await not_done(waiting, 2 * lease_module.POLL)
        monkeypatch.setattr(leader, "_connect", refused)  # the leader cannot reach the database
        with structlog.testing.capture_logs() as logs:
            await terminate(url, leader)
            await asyncio.wait_for(held, 10.0)  # the lead is lost for good
            assert paused == [True]  # deliveries held at once, never let go again
            assert await asyncio.wait_for(waiting, 20.0) == 2
        events = [e["event"] for e in logs]
        # The new leader waited for the old one to notice before it started its term.
        assert events.index("lead_lost") < events.index("lead_taken")
        assert "lead_settling" in events
        assert leader.term is None
    finally:
        for task in (held, waiting):
            task.cancel()
        await standby.release()


async def refused() -> None:
    raise ConnectionRefusedError("the database is out of reach")


async def test_a_leader_whose_lock_connection_drops_takes_it_again_when_nobody_else_did(url):
    leader = Lease(url)
    await leader.acquire()
    paused: list[bool] = []
    held = asyncio.create_task(leader.hold(paused.append))
    try:
        await terminate(url, leader)
        for _ in range(100):
            if paused == [True, False]:
                break
            await asyncio.sleep(0.1)
        assert paused == [True, False]
        assert not held.done() and leader.term == 1
        # It holds the lock again: another instance stands by.
        other = asyncio.create_task(Lease(url).acquire())
        assert await not_done(other, 2 * lease_module.POLL)
        other.cancel()
    finally:
        held.cancel()
        await leader.release()


async def test_a_leader_that_lost_the_lead_writes_nothing_more_to_the_store(url):
    first = Lease(url)
    store = open_store(url, term=await first.acquire())
    store.set_cursor("heard:xmpp/room@muc", {"until": 1})
    assert await store.commit()
    await first._conn.close()  # the lead is gone (the process would step down) ...
    second = Lease(url)
    await second.acquire()  # ... and another instance leads
    store.set_cursor("heard:xmpp/room@muc", {"until": 2})
    assert await store.commit()
    rows = await sql(url, "SELECT value FROM cursors WHERE name = 'heard:xmpp/room@muc'")
    assert [r["value"] for r in rows] == ['{"until": 1}']
    assert store.fenced
    await store.aclose()
    await second.release()
