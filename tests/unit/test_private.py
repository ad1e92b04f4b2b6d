"""Private messages through the core: whom they reach, and that every one not delivered is
refused to its sender with a reason."""

import asyncio
import time

from bridge.config_types import EndpointConfig, LinkConfig
from bridge.core import private
from bridge.core.events import Endpoint, Identity, Private
from bridge.core.private import Partner, Partners, Undeliverable
from bridge.core.router import Router
from tests.unit.test_router import FakeAdapter

LINK = LinkConfig("l", (EndpointConfig("xmpp", "r@muc"), EndpointConfig("irc", "#a"),
                        EndpointConfig("silc", "chan")))
OTHER = LinkConfig("o", (EndpointConfig("xmpp", "other@muc"), EndpointConfig("irc", "#b")))


class People(FakeAdapter):
    """Knows who is in which of its rooms; refuses to deliver to `away`."""

    def __init__(self, network, emit, people, away=()):
        super().__init__(network, emit)
        self.people, self.away, self.refused = people, set(away), []

    def reach(self, room, nick):
        rooms = [room] if room else list(self.people)
        return next((f"{r}/{nick}" for r in rooms if nick in self.people.get(r, ())), None)

    def refuse(self, event, why):
        self.refused.append((event.text, why))

    async def deliver(self, room, event):
        if isinstance(event, Private) and event.to_nick in self.away:
            raise Undeliverable(f"{event.to_nick} is away")
        await super().deliver(room, event)


def make(max_age=0.0, away=()):
    router = Router((LINK, OTHER), max_age=max_age)
    people = {"xmpp": {"r@muc": {"alice"}, "other@muc": {"dora"}}, "irc": {"#a": {"bob"}, "#b": {"erin"}},
              "silc": {"chan": {"sam"}}}
    adapters = {net: People(net, router.receive, rooms, away) for net, rooms in people.items()}
    for adapter in adapters.values():
        router.add_adapter(adapter)
    return router, adapters


async def run(router, *events):
    task = asyncio.create_task(router.run())
    await asyncio.sleep(0)
    for event in events:
        router.receive(event)
    await asyncio.sleep(0.02)
    task.cancel()


def pm(text, to, room="#a", **kw):
    return Private(Endpoint("irc", room), Identity("irc", "nick:bob", "bob"), text, to, reply="bob", **kw)


def delivered(adapter):
    return [(event.text, event.to_address) for _, event in adapter.delivered]


async def test_a_nick_is_found_in_the_rooms_linked_to_where_it_was_written():
    router, a = make()
    await run(router, pm("to alice", "alice"), pm("to sam", "sam"),
              pm("to dora, via #b", "dora", room="", rooms=("#b",)))
    assert delivered(a["xmpp"]) == [("to alice", "r@muc/alice"), ("to dora, via #b", "other@muc/dora")]
    assert delivered(a["silc"]) == [("to sam", "chan/sam")]
    assert a["irc"].refused == []


async def test_nobody_by_that_name_in_the_link_is_refused_not_dropped():
    router, a = make()
    # dora is in a room of another link: not reachable from #a
    await run(router, pm("to dora", "dora"), pm("to nobody", "nobody"))
    assert a["xmpp"].delivered == []
    assert a["irc"].refused == [("to dora", "nobody called dora is in the rooms linked to #a"),
                                ("to nobody", "nobody called nobody is in the rooms linked to #a")]


async def test_a_known_address_goes_straight_there_and_a_named_network_is_searched_whole():
    router, a = make()
    direct = Private(Endpoint("xmpp", ""), Identity("xmpp", "x@y", "x"), "direct", "erin", "irc", reply="x@y/r")
    await run(router, pm("known", "zed", to_network="xmpp", to_address="r@muc/zed"), direct)
    assert delivered(a["xmpp"]) == [("known", "r@muc/zed")]
    assert delivered(a["irc"]) == [("direct", "#b/erin")]


async def test_what_the_recipients_network_cannot_deliver_goes_back_to_the_sender():
    router, a = make(away={"alice"})
    await run(router, pm("to alice", "alice"))
    assert a["irc"].refused == [("to alice", "alice is away")]


async def test_a_private_message_too_old_to_deliver_is_refused():
    router, a = make(max_age=60)
    await run(router, pm("old", "alice", time=time.time() - 120))
    assert a["xmpp"].delivered == [] and a["irc"].refused == [("old", "not delivered within 60 s")]


async def test_a_sender_is_paced_and_told_so():
    router, a = make()
    await run(router, *(pm(f"n{i}", "alice") for i in range(private.BURST + 3)))
    assert len(a["xmpp"].delivered) == private.BURST
    assert [why for _, why in a["irc"].refused] == ["too many private messages at once: wait a moment, "
                                                    "then send it again"] * 3


def test_partners_are_found_by_nick_or_as_the_last_one_and_memory_is_bounded():
    partners = Partners()
    partners.talked("Bob", Partner("alice", "xmpp", "r@muc/alice"))
    partners.talked("bob", Partner("carol", "xmpp", "r@muc/carol"))
    assert partners.find("BOB", None).nick == "carol"
    assert partners.find("bob", "Alice").address == "r@muc/alice"
    partners.renamed("bob", "robert")
    assert partners.find("bob", None) is None and partners.find("robert", None).nick == "carol"
    for n in range(private.PARTNERS + 5):
        partners.talked("robert", Partner(f"p{n}", "xmpp", f"r@muc/p{n}"))
    assert partners.find("robert", "alice") is None  # the oldest went first
    for n in range(private.PEOPLE + 5):
        partners.talked(f"u{n}", Partner("alice", "xmpp", "r@muc/alice"))
    assert partners.find("robert", None) is None and len(partners._people) == private.PEOPLE
