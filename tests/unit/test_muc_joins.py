"""Joining many MUC rooms on a fake clock: a steady stream after the component comes up,
puppets counted, a room with something to deliver served first, pings paced too."""

import asyncio

from bridge.config_types import ComponentConfig, MucJoinsConfig
from bridge.core.events import Endpoint, Identity, Message
from bridge.core.pacing import PacedQueue
from bridge.core.ratelimit import TokenBucket
from bridge.store.sqlite import SqliteStore
from bridge.xmpp.adapter import XmppAdapter
from tests.unit.test_xmpp_room import FakeComponent


class Clock:
    """Fake time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def paced(burst, interval):
    clock = Clock()
    return TokenBucket(burst, interval, clock=clock, sleep=clock.sleep), clock


async def settle(condition, turns=10_000):
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("never happened")


async def test_keys_are_served_in_order_a_burst_then_one_per_interval_each_once():
    bucket, clock = paced(3, 0.5)
    served = []
    queue = PacedQueue(lambda key: served.append((key, clock.now)) or 1, bucket)
    for key in ["a", "b", "c", "d", "e", "b"]:  # b asked twice: served once
        queue.add(key)
    task = asyncio.create_task(queue.run())
    await settle(lambda: len(served) == 5)
    task.cancel()
    assert served == [("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.5), ("e", 1.0)]


async def test_a_costly_key_pays_for_all_it_sent():
    bucket, clock = paced(1, 1.0)
    served = []
    costs = {"big": 4, "next": 1}
    queue = PacedQueue(lambda key: served.append((key, clock.now)) or costs[key], bucket)
    queue.add("big")
    queue.add("next")
    task = asyncio.create_task(queue.run())
    await settle(lambda: len(served) == 2)
    task.cancel()
    assert served == [("big", 0.0), ("next", 4.0)]


def adapter_with(rooms, burst, interval):
    config = ComponentConfig(jid="bridge.example.org", secret="x",
                             joins=MucJoinsConfig(burst=burst, interval=interval))
    adapter = XmppAdapter(config, [].append, SqliteStore(":memory:"))
    adapter.component = FakeComponent()
    for jid in rooms:
        adapter.add_endpoint(jid, {})
    bucket, clock = paced(burst, interval)
    adapter.joins.bucket = bucket
    return adapter, clock


def record_joins(adapter, clock):
    """When each room's join went out, by room."""
    times = {}
    for jid, room in adapter.rooms.items():
        def online(room=room, jid=jid):
            times[jid] = clock.now
            type(room).online(room)
        room.online = online
    return times


def joins_sent(component):
    """Rooms the bot asked to join, in order (the leave before each join is not one)."""
    return [s.get("to").partition("/")[0] for s in component.sent
            if s.tag.endswith("presence") and s.get("type") is None]


async def test_after_the_stream_comes_up_rooms_join_in_a_steady_stream_not_all_at_once():
    rooms = [f"room{n}@muc.example.org" for n in range(60)]
    adapter, clock = adapter_with(rooms, burst=10, interval=0.1)
    times = record_joins(adapter, clock)
    await adapter._online()
    assert joins_sent(adapter.component) == []  # nothing in the stream's first write
    task = asyncio.create_task(adapter.joins.run())
    await settle(lambda: len(times) == 60)
    task.cancel()
    assert joins_sent(adapter.component) == rooms  # each once, in config order
    assert [times[jid] for jid in rooms[:10]] == [0.0] * 10  # the first rooms at once
    assert abs(times[rooms[-1]] - 5.0) < 1e-6  # then 10 a second


async def test_a_room_with_puppets_pays_for_each_presence():
    rooms = ["a@muc.example.org", "b@muc.example.org"]
    adapter, clock = adapter_with(rooms, burst=1, interval=1.0)
    adapter.component.online = True
    first = adapter.rooms[rooms[0]]
    first.joined.set()
    for nick in ("x", "y", "z"):
        await first.deliver(Message(Endpoint("irc", "#c"), Identity("irc", nick, nick), "hi"))
    adapter._offline()
    times = record_joins(adapter, clock)
    await adapter._online()
    task = asyncio.create_task(adapter.joins.run())
    await settle(lambda: len(times) == 2)
    task.cancel()
    assert times == {rooms[0]: 0.0, rooms[1]: 4.0}  # the bot and 3 puppets came back first


async def test_a_room_with_something_to_deliver_is_joined_next():
    rooms = [f"room{n}@muc.example.org" for n in range(30)]
    adapter, clock = adapter_with(rooms, burst=1, interval=1.0)
    await adapter._online()
    task = asyncio.create_task(adapter.joins.run())
    await settle(lambda: len(joins_sent(adapter.component)) >= 2)
    delivery = asyncio.create_task(adapter.deliver(rooms[-1], Message(
        Endpoint("irc", "#c"), Identity("irc", "bob", "bob"), "hello")))
    await settle(lambda: rooms[-1] in joins_sent(adapter.component))
    task.cancel()
    delivery.cancel()
    assert joins_sent(adapter.component).index(rooms[-1]) <= 3


async def test_a_dropped_stream_empties_the_queue():
    rooms = [f"room{n}@muc.example.org" for n in range(5)]
    adapter, clock = adapter_with(rooms, burst=1, interval=1.0)
    await adapter._online()
    adapter._offline()
    assert len(adapter.joins) == 0


async def test_self_pings_are_spread_over_the_interval_not_sent_all_at_once():
    rooms = [f"room{n}@muc.example.org" for n in range(9)]
    adapter, _ = adapter_with(rooms, burst=20, interval=0.05)
    adapter.config = ComponentConfig(jid="bridge.example.org", secret="x", ping_interval=0.5)
    adapter.component.online = True
    loop = asyncio.get_running_loop()
    pinged = []
    for room in adapter.rooms.values():
        async def self_ping(timeout=30.0):
            pinged.append(loop.time())
        room.self_ping = self_ping
    task = asyncio.create_task(adapter._housekeeping())
    async with asyncio.timeout(10):
        while len(pinged) < 9:
            await asyncio.sleep(0.01)
    task.cancel()
    gaps = [b - a for a, b in zip(pinged, pinged[1:])]
    assert min(gaps) >= 0.5 / 10 - 0.005  # one every interval / (rooms + 1)
