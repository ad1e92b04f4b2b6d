"""The PostgreSQL store when its database goes away: callers keep being answered from memory,
nothing is raised into them, writes queue (bounded) and reach the database once it is back."""

import asyncio
import signal

import pytest

from bridge.core.events import Identity
from bridge.store import open_store, postgres
from bridge.store.base import StoreUnavailable


async def write_a_turn(store, n: int) -> None:
    """What the bridge does in a turn of relaying: a puppet, a message id, a cursor, a commit."""
    person = Identity("libera", f"acct{n % 50}", f"nick{n % 50}")
    await store.prepare([person])
    store.puppet(person)
    store.map_message("l", f"origin{n}", "xmpp/room@muc", f"id{n}")
    store.save_cursor("heard:xmpp/room@muc", {"until": n})
    store.flush()
    await asyncio.sleep(0.01)


async def count(url: str, table: str) -> int:
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT COUNT(*) FROM {table}")
    finally:
        await conn.close()


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_writes_made_while_the_database_is_away_reach_it_when_it_is_back(own_postgres, how):
    url = own_postgres.create_database("bridge")
    store = open_store(url)
    for n in range(100):
        await write_a_turn(store, n)
    assert await store.commit()
    ours = store.puppet(Identity("libera", "acct7", "nick7"))

    own_postgres.kill() if how == "kill" else own_postgres.stop()
    for n in range(100, 300):  # relaying on, from memory
        await write_a_turn(store, n)
    assert store.puppet(Identity("libera", "acct7", "nick7")) == ours
    assert store.find_message("l", "origin250", "xmpp/room@muc") == "id250"
    assert store.cursor("heard:xmpp/room@muc") == {"until": 299}
    assert not await store.commit(timeout=1.0)  # nowhere to commit to
    assert store._away and not store._writer.done()

    own_postgres.start()
    assert await store.commit(timeout=60.0)
    assert await count(url, "messages") == 300
    assert await count(url, "puppets") == 50
    await store.aclose()
    store = open_store(url)
    assert store.cursor("heard:xmpp/room@muc") == {"until": 299}
    assert store.puppet(Identity("libera", "acct7", "nick7")) == ours
    await store.aclose()


async def test_the_backlog_is_bounded_and_the_oldest_go_first(own_postgres, monkeypatch):
    monkeypatch.setattr(postgres, "BACKLOG", 100)
    url = own_postgres.create_database("bridge")
    store = open_store(url)
    own_postgres.stop()
    for n in range(250):
        store.map_message("l", f"origin{n}", "xmpp/room@muc", f"id{n}")
    store.flush()
    assert not await store.commit(timeout=1.0)
    assert len(store._message_writes) == 100 and store.dropped == 150
    own_postgres.start()
    assert await store.commit(timeout=60.0)
    await store.aclose()
    store = open_store(url)
    assert store.find_message("l", "origin249", "xmpp/room@muc") == "id249"
    assert store.find_message("l", "origin149", "xmpp/room@muc") is None
    await store.aclose()


async def test_a_puppet_made_while_the_database_was_away_gets_the_stored_local_part(own_postgres):
    url = own_postgres.create_database("bridge")
    store = open_store(url)
    first = Identity("libera", "acct1", "bob")
    assert store.puppet(first).localpart == "bob%libera"
    await store.aclose()

    store = open_store(url)
    store._puppets.clear()  # as if it had dropped out of memory
    store._by_localpart.clear()
    own_postgres.stop()
    other = Identity("libera", "acct2", "bob")
    await store.prepare([other])  # the database is away: nothing to load, no wait
    assert store.puppet(other).localpart == "bob%libera"  # provisional: memory knows no bob
    own_postgres.start()
    assert await store.commit(timeout=60.0)
    assert store.puppet(other).localpart == "bob2%libera"  # bob%libera is acct1's
    assert store.identity_for_localpart("bob2%libera") == other
    await store.aclose()


async def test_a_database_that_does_not_answer_is_asked_once_not_before_each_delivery(own_postgres,
                                                                                     monkeypatch):
    url = own_postgres.create_database("bridge")
    store = open_store(url)
    attempts = []
    connect = postgres.asyncpg.connect
    monkeypatch.setattr(postgres.asyncpg, "connect", lambda *a, **k: attempts.append(1) or connect(*a, **k))
    own_postgres.proc.send_signal(signal.SIGSTOP)  # hangs: connections wait, nothing is refused
    try:
        people = [Identity("libera", f"acct{n}", f"nick{n}") for n in range(5)]
        for person in people:
            await store.prepare([person])  # each as the XMPP adapter would, one per event
            store.puppet(person)
        assert len(attempts) == 1 and store._away
    finally:
        own_postgres.proc.send_signal(signal.SIGCONT)
    assert await store.commit(timeout=60.0)
    assert not store._away
    await store.aclose()


async def test_a_bridge_started_while_its_database_stays_away_says_so(own_postgres, monkeypatch):
    monkeypatch.setattr(postgres, "START_WAIT", 0.0)
    url = own_postgres.create_database("bridge")
    own_postgres.stop()
    with pytest.raises(StoreUnavailable, match="cannot reach the PostgreSQL store: ConnectionRefusedError"):
        open_store(url)


async def test_a_store_the_role_may_not_make_tables_in_says_so(own_postgres):
    own_postgres.create_database("bridge")
    own_postgres.psql("CREATE ROLE reader LOGIN")
    with pytest.raises(StoreUnavailable, match="cannot open the PostgreSQL store: InsufficientPrivilegeError"):
        open_store(f"postgresql://reader@127.0.0.1:{own_postgres.port}/bridge")


async def test_what_a_delivery_waits_for_is_in_the_database_when_durable_returns(postgres_server):
    url = postgres_server.create_database("durable")
    store = open_store(url)
    assert await store.commit()
    store.save_cursor("heard:xmpp/room@muc", {"until": 7})
    mark = store.mark()
    await store.durable(mark)
    import asyncpg
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT value FROM cursors WHERE name = 'heard:xmpp/room@muc'") \
            == '{"until": 7}'
    finally:
        await conn.close()
    await store.aclose()
