"""The router: n-way fan-out, exactly once, never back to the origin."""

import asyncio

from bridge.config_types import EndpointConfig, LinkConfig
from bridge.core.adapter import Adapter
import time

from bridge.core.events import BRIDGE, Endpoint, Identity, Join, Message, MessageKind, Topic
from bridge.core.router import Router


class FakeAdapter(Adapter):
    def __init__(self, network, emit, own=(), joins=True):
        super().__init__(network, emit)
        self.rooms = {}
        self.delivered = []
        self.own = set(own)
        self.joins = joins

    def wants(self, event):
        return self.joins or not isinstance(event, Join)

    def add_endpoint(self, room, options):
        self.rooms[room] = options

    async def run(self):
        await asyncio.Event().wait()

    async def deliver(self, room, event):
        self.delivered.append((room, event))

    def is_own(self, identity):
        return identity.nick in self.own


def make(links, max_age=0.0, no_joins=(), **own):
    router = Router(links, queue_size=3, max_age=max_age)
    adapters = {}
    for net in {ep.network for link in links for ep in link.endpoints}:
        adapters[net] = FakeAdapter(net, router.receive, own.get(net, ()), net not in no_joins)
        router.add_adapter(adapters[net])
    return router, adapters


LINK = LinkConfig("l", (EndpointConfig("xmpp", "r@muc"), EndpointConfig("irc1", "#a"),
                        EndpointConfig("irc2", "#b", topic="none")))


async def settle(router):
    task = asyncio.create_task(router.run())
    await asyncio.sleep(0.01)
    task.cancel()


def msg(net, room, nick, text="hi"):
    return Message(Endpoint(net, room), Identity(net, nick, nick), text)


async def test_each_message_reaches_every_other_endpoint_once():
    router, ad = make((LINK,))
    for net, room in (("xmpp", "r@muc"), ("irc1", "#a"), ("irc2", "#b")):
        router.receive(msg(net, room, "u", f"from {net}"))
    await settle(router)
    for net, adapter in ad.items():
        texts = sorted(e.text for _, e in adapter.delivered)
        assert texts == sorted(f"from {n}" for n in ad if n != net)
    assert ad["xmpp"].rooms["r@muc"]["link"] == "l"


async def test_own_identities_are_not_relayed():
    router, ad = make((LINK,), irc1={"relaybot"})
    router.receive(msg("irc1", "#a", "relaybot"))
    await settle(router)
    assert all(not a.delivered for a in ad.values())


async def test_a_bridge_notice_about_an_endpoint_reaches_the_rest_of_the_link():
    router, ad = make((LINK,), irc1={"bridge"})  # even where the adapter calls that nick its own
    router.receive(Message(Endpoint("irc1", "#a"), BRIDGE, "gap", MessageKind.NOTICE))
    await settle(router)
    assert [e.text for _, e in ad["xmpp"].delivered] == ["gap"]
    assert [e.text for _, e in ad["irc2"].delivered] == ["gap"]
    assert ad["irc1"].delivered == []


async def test_events_an_adapter_does_not_show_never_take_a_place_in_its_queue():
    router, ad = make((LINK,), no_joins=("irc1",))
    for i in range(5):
        router.receive(Join(Endpoint("xmpp", "r@muc"), Identity("xmpp", f"u{i}", f"u{i}")))
    router.receive(msg("xmpp", "r@muc", "u", "real"))
    await settle(router)
    assert [e.text for _, e in ad["irc1"].delivered] == ["real"]  # not pushed out by 5 joins
    assert len(ad["irc2"].delivered) == 3  # queue_size 3: the joins and the message compete


async def test_messages_older_than_max_age_are_dropped_with_one_line_saying_so():
    router, ad = make((LINK,), max_age=60)
    old = time.time() - 120
    router.receive(Message(Endpoint("xmpp", "r@muc"), Identity("xmpp", "u", "u"), "old 1", time=old))
    router.receive(Message(Endpoint("xmpp", "r@muc"), Identity("xmpp", "u", "u"), "old 2", time=old))
    router.receive(msg("xmpp", "r@muc", "u", "fresh"))
    await settle(router)
    texts = [e.text for _, e in ad["irc1"].delivered]
    assert len(texts) == 2 and texts[1] == "fresh"
    assert "2 messages from xmpp/r@muc" in texts[0] and "1 minutes" not in texts[0]
    assert ad["irc1"].delivered[0][1].sender == BRIDGE


async def test_topic_direction():
    router, ad = make((LINK,))
    router.receive(Topic(Endpoint("xmpp", "r@muc"), Identity("xmpp", "a", "a"), "t1"))
    router.receive(Topic(Endpoint("irc2", "#b"), Identity("irc2", "b", "b"), "t2"))
    await settle(router)
    assert [e.text for _, e in ad["irc1"].delivered] == ["t1"]
    assert ad["irc2"].delivered == []  # topic: none
    assert ad["xmpp"].delivered == []


async def test_full_queue_drops_oldest():
    router, ad = make((LINK,))
    for i in range(5):
        router.receive(msg("xmpp", "r@muc", "u", str(i)))
    await settle(router)
    assert [e.text for _, e in ad["irc1"].delivered] == ["2", "3", "4"]


async def test_endpoint_in_two_links_gets_each_message_once():
    other = LinkConfig("m", (EndpointConfig("xmpp", "r@muc"), EndpointConfig("irc1", "#a")))
    router, ad = make((LINK, other))
    router.receive(msg("xmpp", "r@muc", "u"))
    await settle(router)
    assert len(ad["irc1"].delivered) == 1


class Counted:
    """A RelayStats that writes down what it is told."""

    def __init__(self):
        self.relayed, self.dropped = [], []

    def relayed_(self, origin, target, latency):
        self.relayed.append((str(origin), str(target), latency is not None))

    def dropped_(self, target, reason, count=1):
        self.dropped.append((str(target), reason, count))


def counting(router):
    counted = Counted()
    router.stats.relayed, router.stats.dropped = counted.relayed_, counted.dropped_
    return counted


async def test_what_is_relayed_and_dropped_is_counted_once_per_delivery():
    router, _ = make((LINK,), max_age=60.0)
    counted = counting(router)
    router.receive(msg("xmpp", "r@muc", "alice"))
    router.receive(Message(Endpoint("irc1", "#a"), Identity("irc1", "bob", "bob"), "late one", late=True))
    router.receive(Message(Endpoint("xmpp", "r@muc"), Identity("xmpp", "a", "a"), "old",
                           time=time.time() - 120))
    router.announce([Endpoint("irc1", "#a")], "a notice from the bridge itself")
    await settle(router)
    assert sorted(counted.relayed) == [  # a late replay has no latency: its time is when it was said
        ("irc1/#a", "irc2/#b", False), ("irc1/#a", "xmpp/r@muc", False),
        ("xmpp/r@muc", "irc1/#a", True), ("xmpp/r@muc", "irc2/#b", True)]
    assert sorted(counted.dropped) == [("irc1/#a", "too old", 1), ("irc2/#b", "too old", 1)]


async def test_a_full_queue_counts_what_it_drops():
    router, _ = make((LINK,))
    counted = counting(router)
    for i in range(5):  # two more than a queue holds
        router.receive(msg("irc1", "#a", "carol", f"burst {i}"))
    await settle(router)
    assert sorted(counted.dropped) == [("irc2/#b", "queue full", 1)] * 2 + [("xmpp/r@muc", "queue full", 1)] * 2
    assert len(counted.relayed) == 6


async def test_a_paused_router_holds_deliveries_until_it_resumes():
    router, adapters = make((LINK,))
    task = asyncio.create_task(router.run())
    try:
        router.pause(True)
        router.receive(msg("irc1", "#a", "bob", "held"))
        await asyncio.sleep(0.05)
        assert adapters["xmpp"].delivered == [] and adapters["irc2"].delivered == []
        router.pause(False)
        await asyncio.sleep(0.05)
        assert [e.text for _, e in adapters["xmpp"].delivered] == ["held"]
        assert [e.text for _, e in adapters["irc2"].delivered] == ["held"]
    finally:
        task.cancel()


async def test_with_a_barrier_an_event_waits_for_the_writes_made_before_it_came_in():
    class Writes:
        def __init__(self):
            self.made, self.committed = 0, 0
            self.done = asyncio.Event()

        def mark(self):
            return self.made

        async def durable(self, mark):
            while self.committed < mark:
                await self.done.wait()
                self.done.clear()

    writes = Writes()
    router = Router((LINK,), barrier=writes)
    adapters = {}
    for net in ("xmpp", "irc1", "irc2"):
        adapters[net] = FakeAdapter(net, router.receive)
        router.add_adapter(adapters[net])
    task = asyncio.create_task(router.run())
    try:
        writes.made = 1  # the room's cursor moved when it heard the message
        router.receive(msg("xmpp", "r@muc", "alice", "heard"))
        await asyncio.sleep(0.05)
        assert adapters["irc1"].delivered == []
        writes.committed = 1
        writes.done.set()
        await asyncio.sleep(0.05)
        assert [e.text for _, e in adapters["irc1"].delivered] == ["heard"]
    finally:
        task.cancel()
