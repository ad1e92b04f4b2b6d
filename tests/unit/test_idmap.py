"""The message-id map: ids across endpoints, both ways, bounded in memory and in the store
(on SQLite and on PostgreSQL)."""

import asyncio

from bridge.config_types import EndpointConfig, LinkConfig
from bridge.core.events import Endpoint, Identity, Message, Reaction, Retraction
from bridge.core.idmap import MessageIds, references
from bridge.core.router import Router
from tests.unit.test_router import FakeAdapter

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


# -- older than memory: read ahead before delivery ----------------------------------

ALICE, BOB = Identity("xmpp", "alice@example.org", "alice"), Identity("libera", "bob", "bob")


def said_long_ago(ids) -> None:
    """bob's IRC line m0 reached the room as sent-0 (stanza-id stanza-0); alice's room message
    stanza-a (her client's id client-a) reached IRC as msgid-a; then 200 others."""
    ids.remember("l", IRC, "m0", XMPP, "sent-0")
    ids.alias("l", XMPP, "sent-0", "stanza-0")
    ids.remember("l", XMPP, "stanza-a", XMPP, "client-a")
    ids.remember("l", XMPP, "stanza-a", IRC, "msgid-a")
    for n in range(1, 201):
        ids.remember("l", IRC, f"m{n}", XMPP, f"x{n}")


async def test_a_message_older_than_memory_is_found_for_what_refers_to_it(backend, monkeypatch):
    if backend.name == "postgres":
        monkeypatch.setattr(backend.module, "MESSAGE_CACHE", 50)
    store = backend.open()
    said_long_ago(MessageIds(store, memory=10))
    await store.aclose()
    cases = [  # event, where it goes, whether the id it was sent with: the id it has there
        (Message(IRC, BOB, "fixed", replaces="m0"), XMPP, True, "sent-0"),
        (Message(IRC, BOB, "yes", reply_to="m0"), XMPP, False, "stanza-0"),
        (Reaction(XMPP, ALICE, "stanza-0", "👍"), IRC, False, "m0"),
        (Retraction(XMPP, ALICE, "client-a"), IRC, False, "msgid-a"),  # by its client's id
        (Reaction(IRC, BOB, "msgid-a", "👍"), XMPP, False, "stanza-a"),
        (Message(XMPP, ALICE, "fixed", replaces="client-a"), IRC2, True, None),  # never reached
    ]
    for event, to, sent, expected in cases:
        store = backend.open()  # memory holds the newest 50 mappings (PostgreSQL) or none
        ids = MessageIds(store, memory=10)
        [ref] = references(event)
        if backend.name == "postgres":  # the gap the read-ahead closes
            assert ids.translate("l", event.endpoint, ref, to, sent) is None
        await ids.prepare(["l"], event, to)
        assert ids.translate("l", event.endpoint, ref, to, sent) == expected, event
        if backend.name == "postgres":
            assert len(store._rows) <= 50  # what was read joined the bounded memory
        await store.aclose()


async def test_the_router_reads_ahead_before_any_adapter_translates(backend, monkeypatch):
    if backend.name == "postgres":
        monkeypatch.setattr(backend.module, "MESSAGE_CACHE", 50)
    store = backend.open()
    said_long_ago(MessageIds(store, memory=10))
    await store.aclose()
    store = backend.open()
    ids = MessageIds(store, memory=10)
    link = LinkConfig("l", (EndpointConfig("xmpp", XMPP.room), EndpointConfig("libera", IRC.room)))
    router = Router((link,), ids=ids)
    found = []

    class Translating(FakeAdapter):  # as the XMPP adapter: the correction's target, synchronously
        async def deliver(self, room, event):
            found.append(ids.translate(self.rooms[room]["link"], event.endpoint, event.replaces,
                                       Endpoint(self.network, room), sent=True))

    for network in ("xmpp", "libera"):
        router.add_adapter(Translating(network, router.receive))
    router.receive(Message(IRC, BOB, "fixed", replaces="m0"))
    task = asyncio.create_task(router.run())
    async with asyncio.timeout(10):
        while not found:
            await asyncio.sleep(0.01)
    task.cancel()
    assert found == ["sent-0"]
    await store.aclose()
