"""The SQLite store: stable puppets across restarts, migrations, pruning."""

from bridge.core.events import Identity
import sqlite3

from bridge.store import sqlite
from bridge.store.sqlite import MESSAGE_TTL, SqliteStore, escape_localpart


def test_puppet_is_stable_across_restarts(tmp_path):
    path = str(tmp_path / "bridge.db")
    alice = Identity("libera", "alice-account", "Alice")
    store = SqliteStore(path)
    first = store.puppet(alice)
    assert first.localpart == "alice%libera"
    store.rename_puppet(alice, "Alice2")
    store.close()

    store = SqliteStore(path)
    again = store.puppet(alice)
    assert again.localpart == "alice%libera"
    assert again.nick == "Alice2"
    assert store.identity_for_localpart("alice%libera") == Identity("libera", "alice-account", "Alice2")


def test_two_identities_with_one_nick_get_distinct_jids(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    a = store.puppet(Identity("libera", "acct1", "bob"))
    b = store.puppet(Identity("libera", "acct2", "bob"))
    assert a.localpart != b.localpart


def test_local_parts_are_found_as_the_server_folds_them(tmp_path):
    path = str(tmp_path / "b.db")
    store = SqliteStore(path)
    street = Identity("Libera", "acct3", "Straße")
    assert store.puppet(street).localpart == "strasse%Libera"
    for routed in ("strasse%libera", "STRASSE%Libera", "straße%libera"):
        assert store.identity_for_localpart(routed) == street
    store.close()


def test_an_older_stores_puppets_are_found_under_their_folded_local_parts(tmp_path):
    path = str(tmp_path / "old.db")
    db = sqlite3.connect(path)  # a store as version 3 left it: local parts lower-cased only
    db.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); "
                     "INSERT INTO schema_version VALUES (3);" + "".join(sqlite.MIGRATIONS[:3]) +
                     "INSERT INTO puppets VALUES ('Libera', 'acct3', 'ﬁxß%Libera', 'ﬁxß');")
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.identity_for_localpart("fixss%libera") == Identity("Libera", "acct3", "ﬁxß")
    assert store.puppet(Identity("Libera", "acct3", "ﬁxß")).localpart == "ﬁxß%Libera"  # unchanged


def test_puppets_are_read_when_needed_memory_is_bounded_and_the_unseen_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(sqlite, "PUPPET_CACHE", 10)
    path = str(tmp_path / "b.db")
    store = SqliteStore(path, puppet_ttl=100.0)
    people = [Identity("net", f"id{n}", f"nick{n}") for n in range(300)]
    records = [store.puppet(p) for p in people]
    assert len(store._puppets) == 10 and store.puppet_count() == 300
    store.close()
    store = SqliteStore(path, puppet_ttl=100.0)  # a fresh start reads no puppet
    assert len(store._puppets) == 0 and len(store._by_localpart) == 0
    assert [store.puppet(p) for p in people] == records
    assert all(store.identity_for_localpart(r.localpart) == p for r, p in zip(records, people))
    assert len(store._puppets) <= 10 and len(store._by_localpart) <= 10
    store.puppet(people[0])  # seen again now: stays
    store.db.execute("UPDATE puppets SET seen = seen - 1000 WHERE native_id != 'id0'")
    store.prune()
    assert store.puppet_count() == 1 and store.identity_for_localpart("nick0%net") == people[0]
    assert store.identity_for_localpart("nick1%net") is None


def test_localpart_escaping_xep0106():
    assert escape_localpart("d'artagnan") == r"d\27artagnan"
    assert escape_localpart("a b@c/d") == r"a\20b\40c\2fd"


def test_message_map_and_prune(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    store.map_message("hackers", "m1", "libera/#hackers", "irc-id-1")
    assert store.find_message("hackers", "m1", "libera/#hackers") == "irc-id-1"
    import time
    store.prune(now=time.time() + MESSAGE_TTL + 1)
    assert store.find_message("hackers", "m1", "libera/#hackers") is None


def test_schema_version_recorded(tmp_path):
    path = str(tmp_path / "b.db")
    SqliteStore(path).close()
    store = SqliteStore(path)  # reopening runs no migration twice
    assert store.db.execute("SELECT version FROM schema_version").fetchall() == [(len(sqlite.MIGRATIONS),)]


def test_cursors_survive_a_restart(tmp_path):
    path = str(tmp_path / "b.db")
    store = SqliteStore(path)
    store.set_cursor("heard:xmpp/r@muc", {"until": 1700000000.5, "keys": []})
    store.set_cursor("heard:xmpp/r@muc", {"until": 1700000001.5, "keys": [["a", "b"]]})
    store.close()  # only the newest value matters
    assert SqliteStore(path).cursor("heard:xmpp/r@muc") == {"until": 1700000001.5, "keys": [["a", "b"]]}
    assert SqliteStore(path).cursor("other") is None


def test_key_pinning(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    assert store.pinned_key("silcnet", "silc.example.net") is None
    store.pin_key("silcnet", "silc.example.net", "AB:CD")
    assert store.pinned_key("silcnet", "silc.example.net") == "AB:CD"
