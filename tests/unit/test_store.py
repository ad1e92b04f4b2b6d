"""The store, on SQLite and on PostgreSQL: stable puppets across restarts, migrations, pruning."""

import time

from bridge.core.events import Identity
from bridge.store.sqlite import MESSAGE_TTL, SqliteStore, escape_localpart


async def restart(backend, store, **limits):
    await store.aclose()
    return backend.open(**limits)


async def identity_for(store, localpart):
    """What the XMPP side gets for a stanza to `localpart`, asked again after a first
    miss (a PostgreSQL store loads a local part not in memory in the background)."""
    found = store.identity_for_localpart(localpart)
    if found is None and hasattr(store, "loaded"):
        await store.loaded()
        found = store.identity_for_localpart(localpart)
    return found


async def test_puppet_is_stable_across_restarts(backend):
    alice = Identity("libera", "alice-account", "Alice")
    store = backend.open()
    first = store.puppet(alice)
    assert first.localpart == "alice%libera"
    store.rename_puppet(alice, "Alice2")
    store = await restart(backend, store)
    again = store.puppet(alice)
    assert again.localpart == "alice%libera"
    assert again.nick == "Alice2"
    assert await identity_for(store, "alice%libera") == Identity("libera", "alice-account", "Alice2")
    await store.aclose()


async def test_two_identities_with_one_nick_get_distinct_jids(backend):
    store = backend.open()
    a = store.puppet(Identity("libera", "acct1", "bob"))
    b = store.puppet(Identity("libera", "acct2", "bob"))
    assert a.localpart != b.localpart
    await store.aclose()


async def test_local_parts_are_found_as_the_server_folds_them(backend):
    store = backend.open()
    street = Identity("Libera", "acct3", "Straße")
    assert store.puppet(street).localpart == "strasse%Libera"
    store = await restart(backend, store)
    for routed in ("strasse%libera", "STRASSE%Libera", "straße%libera"):
        assert await identity_for(store, routed) == street
    await store.aclose()


async def test_an_older_stores_puppets_are_found_under_their_folded_local_parts(backend):
    # A store as version 3 left it: local parts lower-cased only.
    await backend.executescript(
        "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (3);"
        + "".join(backend.migrations[:3])
        + "INSERT INTO puppets VALUES ('Libera', 'acct3', 'ﬁxß%Libera', 'ﬁxß');")
    store = backend.open()
    assert await identity_for(store, "fixss%libera") == Identity("Libera", "acct3", "ﬁxß")
    assert store.puppet(Identity("Libera", "acct3", "ﬁxß")).localpart == "ﬁxß%Libera"  # unchanged
    await store.aclose()


async def test_puppets_are_read_when_needed_memory_is_bounded_and_the_unseen_pruned(backend, monkeypatch):
    monkeypatch.setattr(backend.module, "PUPPET_CACHE", 10)
    store = backend.open(puppet_ttl=100.0)
    people = [Identity("net", f"id{n}", f"nick{n}") for n in range(300)]
    records = [store.puppet(p) for p in people]
    for n in range(0, 300, 3):  # known under another nick now: their JIDs stay
        people[n] = Identity("net", f"id{n}", f"renamed{n}")
        records[n] = store.rename_puppet(people[n], people[n].nick)
        assert records[n].localpart == f"nick{n}%net"
    await store.commit()
    assert len(store._puppets) == 10 and await backend.execute("SELECT COUNT(*) FROM puppets") == [(300,)]
    store = await restart(backend, store, puppet_ttl=100.0)
    # A fresh start reads no puppet (SQLite), or only the most recently seen (PostgreSQL).
    assert len(store._puppets) == len(store._by_localpart) == (0 if backend.name == "sqlite" else 10)
    for person, record in zip(people, records):
        await store.prepare([person])  # as the XMPP adapter does before it delivers
        assert store.puppet(person) == record
    for person, record in zip(people, records):
        assert await identity_for(store, record.localpart) == person
    assert len(store._puppets) <= 10 and len(store._by_localpart) <= 10
    await store.prepare([people[0]])
    store.puppet(people[0])  # seen again now: stays
    await store.commit()
    await backend.execute("UPDATE puppets SET seen = seen - 1000 WHERE native_id != 'id0'")
    store.prune()
    await store.commit()
    assert await backend.execute("SELECT COUNT(*) FROM puppets") == [(1,)]
    assert await identity_for(store, "nick0%net") == people[0]
    assert await identity_for(store, "nick1%net") is None
    await store.aclose()


def test_localpart_escaping_xep0106():
    assert escape_localpart("d'artagnan") == r"d\27artagnan"
    assert escape_localpart("a b@c/d") == r"a\20b\40c\2fd"


async def test_message_map_and_prune(backend):
    store = backend.open()
    store.map_message("hackers", "m1", "libera/#hackers", "irc-id-1")
    assert store.find_message("hackers", "m1", "libera/#hackers") == "irc-id-1"
    store.prune(now=time.time() + MESSAGE_TTL + 1)
    await store.commit()
    assert store.find_message("hackers", "m1", "libera/#hackers") is None
    assert await backend.execute("SELECT COUNT(*) FROM messages") == [(0,)]
    await store.aclose()


async def test_schema_version_recorded(backend):
    await backend.open().aclose()
    store = backend.open()  # reopening runs no migration twice
    assert await backend.execute("SELECT version FROM schema_version") == [(len(backend.migrations),)]
    await store.aclose()


async def test_cursors_survive_a_restart(backend):
    store = backend.open()
    store.set_cursor("heard:xmpp/r@muc", {"until": 1700000000.5, "keys": []})
    store.set_cursor("heard:xmpp/r@muc", {"until": 1700000001.5, "keys": [["a", "b"]]})
    store = await restart(backend, store)  # only the newest value matters
    assert store.cursor("heard:xmpp/r@muc") == {"until": 1700000001.5, "keys": [["a", "b"]]}
    assert store.cursor("other") is None
    await store.aclose()


async def test_key_pinning(backend):
    store = backend.open()
    assert store.pinned_key("silcnet", "silc.example.net") is None
    store.pin_key("silcnet", "silc.example.net", "AB:CD")
    assert store.pinned_key("silcnet", "silc.example.net") == "AB:CD"
    store = await restart(backend, store)
    assert store.pinned_key("silcnet", "silc.example.net") == "AB:CD"
    await store.aclose()


def test_portal_history_per_user_and_room_bounded_and_paged(tmp_path):
    store = SqliteStore(str(tmp_path / "h.db"))
    base = time.time() - 100
    ids = [store.add_history("alice@x", "#c%n@b", base + i, "bob", f"line {i}", keep=10) for i in range(30)]
    store.add_history("carol@x", "#c%n@b", base + 50, "bob", "carol's copy", keep=10)
    lines = store.history("alice@x", "#c%n@b", 100)
    assert [l.body for l in lines] == [f"line {i}" for i in range(20, 30)]  # the newest 10, oldest first
    assert [l.body for l in store.history("alice@x", "#c%n@b", 3)] == ["line 27", "line 28", "line 29"]
    page = store.history("alice@x", "#c%n@b", 3, after=ids[21], newest=False)
    assert [l.body for l in page] == ["line 22", "line 23", "line 24"]
    page = store.history("alice@x", "#c%n@b", 2, before=ids[25])
    assert [l.body for l in page] == ["line 23", "line 24"]
    assert [l.body for l in store.history("alice@x", "#c%n@b", 100, start=base + 27)] == \
        ["line 27", "line 28", "line 29"]
    assert store.history("alice@x", "#c%n@b", 5, after="no-such-id") is None
    assert store.history("alice@x", "#c%n@b", 5, after=ids[0]) is None  # pruned
    store.close()
    again = SqliteStore(str(tmp_path / "h.db"))
    assert [l.uuid for l in again.history("alice@x", "#c%n@b", 1)] == [ids[-1]]
    again.prune(now=base + 28.5 + 30 * 24 * 3600)  # a month later: only what is younger than that
    assert [l.body for l in again.history("alice@x", "#c%n@b", 100)] == ["line 29"]
