"""The message-id map: ids across endpoints, both ways, bounded in memory and in the store
(on SQLite and on PostgreSQL)."""

from bridge.core.events import Endpoint
from bridge.core.idmap import MessageIds

XMPP = Endpoint("xmpp", "room@muc")
IRC = Endpoint("libera", "#room")
IRC2 = Endpoint("oftc", "#room")


async def test_a_message_is_found_from_any_endpoint_under_any_of_its_names(backend):
    ids = MessageIds(backend.open())
    ids.remember("l", XMPP, "stanza-1", XMPP, "client-1")  # the client's id for it
    ids.remember("l", XMPP, "stanza-1", IRC, "msgid-1")
    ids.remember("l", XMPP, "stanza-1", IRC2, "msgid-2")
    assert ids.translate("l", XMPP, "client-1", IRC) == "msgid-1"
    assert ids.translate("l", XMPP, "stanza-1", IRC2) == "msgid-2"
    assert ids.translate("l", IRC, "msgid-1", XMPP) == "stanza-1"
    assert ids.translate("l", IRC2, "msgid-2", IRC) == "msgid-1"
    assert ids.translate("other-link", IRC, "msgid-1", XMPP) is None
    assert ids.translate("l", IRC, "unknown", XMPP) is None
    await ids.store.aclose()


async def test_ids_survive_a_restart(backend):
    store = backend.open()
    MessageIds(store).remember("l", IRC, "msgid-1", XMPP, "puppet-msg-1")
    await store.aclose()
    store = backend.open()
    assert MessageIds(store).translate("l", IRC, "msgid-1", XMPP) == "puppet-msg-1"
    await store.aclose()


async def test_filled_past_its_bounds_memory_and_store_keep_the_newest(backend):
    store = backend.open()
    ids = MessageIds(store, memory=100, limit=500, prune_every=100)
    for n in range(3000):
        ids.remember("l", IRC, f"m{n}", XMPP, f"x{n}")
    await store.commit()
    assert len(ids) <= 200  # 100 each way
    [(count,)] = await backend.execute("SELECT COUNT(*) FROM messages")
    assert count <= 600  # pruned to 500 every 100 writes
    assert ids.translate("l", IRC, "m2999", XMPP) == "x2999"  # from memory
    assert ids.translate("l", IRC, "m2600", XMPP) == "x2600"  # from the store
    assert ids.translate("l", IRC, "m10", XMPP) is None  # pruned
    await store.aclose()


async def test_two_names_on_one_endpoint_the_sent_one_and_the_rooms(backend):
    store = backend.open()
    for ids in (MessageIds(store), MessageIds(store, memory=0)):  # from memory, from the store
        ids.remember("l", IRC, "msgid-1", XMPP, "sent-id")
        ids.alias("l", XMPP, "sent-id", "stanza-id")  # the room's copy told its stanza-id
        assert ids.translate("l", IRC, "msgid-1", XMPP) == "stanza-id"
        assert ids.translate("l", IRC, "msgid-1", XMPP, sent=True) == "sent-id"
        assert ids.translate("l", XMPP, "stanza-id", IRC) == "msgid-1"
        assert ids.translate("l", XMPP, "sent-id", IRC) == "msgid-1"
    await store.aclose()
