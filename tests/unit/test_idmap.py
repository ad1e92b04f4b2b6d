"""The message-id map: ids across endpoints, both ways, bounded in memory and in the store."""

from bridge.core.events import Endpoint
from bridge.core.idmap import MessageIds
from bridge.store.sqlite import SqliteStore

XMPP = Endpoint("xmpp", "room@muc")
IRC = Endpoint("libera", "#room")
IRC2 = Endpoint("oftc", "#room")


def test_a_message_is_found_from_any_endpoint_under_any_of_its_names(tmp_path):
    ids = MessageIds(SqliteStore(str(tmp_path / "b.db")))
    ids.remember("l", XMPP, "stanza-1", XMPP, "client-1")  # the client's id for it
    ids.remember("l", XMPP, "stanza-1", IRC, "msgid-1")
    ids.remember("l", XMPP, "stanza-1", IRC2, "msgid-2")
    assert ids.translate("l", XMPP, "client-1", IRC) == "msgid-1"
    assert ids.translate("l", XMPP, "stanza-1", IRC2) == "msgid-2"
    assert ids.translate("l", IRC, "msgid-1", XMPP) == "stanza-1"
    assert ids.translate("l", IRC2, "msgid-2", IRC) == "msgid-1"
    assert ids.translate("other-link", IRC, "msgid-1", XMPP) is None
    assert ids.translate("l", IRC, "unknown", XMPP) is None


def test_ids_survive_a_restart(tmp_path):
    path = str(tmp_path / "b.db")
    store = SqliteStore(path)
    MessageIds(store).remember("l", IRC, "msgid-1", XMPP, "puppet-msg-1")
    store.close()
    assert MessageIds(SqliteStore(path)).translate("l", IRC, "msgid-1", XMPP) == "puppet-msg-1"


def test_filled_past_its_bounds_memory_and_store_keep_the_newest(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    ids = MessageIds(store, memory=100, limit=500, prune_every=100)
    for n in range(3000):
        ids.remember("l", IRC, f"m{n}", XMPP, f"x{n}")
    store.flush()
    assert len(ids) <= 200  # 100 each way
    assert store.message_count() <= 600  # pruned to 500 every 100 writes
    assert ids.translate("l", IRC, "m2999", XMPP) == "x2999"  # from memory
    assert ids.translate("l", IRC, "m2600", XMPP) == "x2600"  # from the store
    assert ids.translate("l", IRC, "m10", XMPP) is None  # pruned


def test_two_names_on_one_endpoint_the_sent_one_and_the_rooms(tmp_path):
    store = SqliteStore(str(tmp_path / "b.db"))
    for ids in (MessageIds(store), MessageIds(store, memory=0)):  # from memory, from the store
        ids.remember("l", IRC, "msgid-1", XMPP, "sent-id")
        ids.alias("l", XMPP, "sent-id", "stanza-id")  # the room's copy told its stanza-id
        assert ids.translate("l", IRC, "msgid-1", XMPP) == "stanza-id"
        assert ids.translate("l", IRC, "msgid-1", XMPP, sent=True) == "sent-id"
        assert ids.translate("l", XMPP, "stanza-id", IRC) == "msgid-1"
        assert ids.translate("l", XMPP, "sent-id", IRC) == "msgid-1"
