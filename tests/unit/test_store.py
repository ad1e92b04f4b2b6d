"""The SQLite store: stable puppets across restarts, migrations, pruning."""

import time

from bridge.core.events import Identity
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
    # one written by an older bridge, lower-cased only, is found under the folded name too
    store.db.execute("UPDATE puppets SET localpart = 'ﬁxß%Libera' WHERE native_id = 'acct3'")
    store.close()
    assert SqliteStore(path).identity_for_localpart("fixss%libera") == street


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
    assert store.db.execute("SELECT version FROM schema_version").fetchall() == [(4,)]


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
