"""Links and the router: who hears what, exactly once, never back to its origin.

Every endpoint gets one bounded queue and one worker task that delivers to
its adapter in order. A full queue drops its oldest event (logged with a
count): a stuck network must not grow memory or stall the others. An event
older than `max_age` when its turn comes is dropped too, and the room gets one
line saying how many, instead of a late flood. Private messages go through one queue per
recipient network (`bridge.core.private`); one that cannot be delivered, or is too old,
goes back to its sender's adapter to be refused.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

import structlog

from bridge.config_types import EndpointConfig, LinkConfig
from bridge.core.adapter import Adapter
from bridge.core.events import BRIDGE, Endpoint, Event, Message, MessageKind, Private, Topic
from bridge.core.notices import stale_text
from bridge.core.private import PrivateRoutes, Undeliverable

log = structlog.get_logger(__name__)


class RelayStats:
    """What the router counts, once per delivery (never per stanza parsed): nothing here;
    `bridge.ops.metrics` counts for real."""

    def relayed(self, origin: Endpoint, target: Endpoint, latency: float | None) -> None:
        """A message from `origin` was handed to `target`'s adapter, `latency` seconds after
        it arrived (None: a late replay, whose time is when it was said)."""

    def dropped(self, target: Endpoint, reason: str, count: int = 1) -> None:
        """Events for `target` that were not delivered, and why."""


class EndpointQueue:
    """Bounded FIFO feeding one endpoint's adapter, oldest dropped when full."""

    def __init__(self, endpoint: Endpoint, adapter: Adapter, size: int, max_age: float = 0.0,
                 refuse: Callable[[Private, str], None] | None = None,
                 stats: RelayStats | None = None) -> None:
        self.endpoint = endpoint
        self.adapter = adapter
        self.stats = stats or RelayStats()
        self.refuse = refuse or (lambda event, why: None)
        self.max_age = max_age
        self.items: collections.deque[Event] = collections.deque(maxlen=size)
        self.ready = asyncio.Event()
        self.dropped = 0
        self.stale = 0

    def put(self, event: Event) -> None:
        if len(self.items) == self.items.maxlen:
            self.dropped += 1
            self.stats.dropped(self.endpoint, "queue full")
            if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8, ... drops
                log.warning("relay_queue_overflow", network=self.endpoint.network,
                            room=self.endpoint.room, dropped=self.dropped)
        self.items.append(event)
        self.ready.set()

    async def work(self) -> None:
        while True:
            await self.ready.wait()
            stale: list[str] = []
            while self.items:
                event = self.items.popleft()
                if self.max_age and time.time() - event.time > self.max_age:
                    self.stats.dropped(self.endpoint, "too old")
                    if isinstance(event, Private):
                        self.refuse(event, f"not delivered within {self.max_age:g} s")
                    elif isinstance(event, Message):
                        stale.append(str(event.endpoint))
                    continue
                if stale:
                    await self._stale(stale)
                    stale = []
                await self._deliver(event)
            if stale:
                await self._stale(stale)
            self.ready.clear()

    async def _stale(self, origins: list[str]) -> None:
        """One line for a run of messages too old to relay."""
        self.stale += len(origins)
        log.warning("relay_stale_dropped", network=self.endpoint.network, room=self.endpoint.room,
                    count=len(origins), stale_total=self.stale, max_age=self.max_age)
        await self._deliver(Message(self.endpoint, BRIDGE, stale_text(len(origins), origins, self.max_age),
                                    MessageKind.NOTICE))

    async def _deliver(self, event: Event) -> None:
        try:
            await self.adapter.deliver(self.endpoint.room, event)
        except Undeliverable as why:
            self.stats.dropped(self.endpoint, "undeliverable")
            self.refuse(event, str(why))
        except Exception:  # an adapter bug must not stop the relay
            self.stats.dropped(self.endpoint, "failed")
            log.exception("deliver_failed", network=self.endpoint.network,
                          room=self.endpoint.room, kind=type(event).__name__)
        else:
            if isinstance(event, Message) and event.sender != BRIDGE:
                self.stats.relayed(event.endpoint, self.endpoint,
                                   None if event.late else time.time() - event.time)


class Router:
    def __init__(self, links: tuple[LinkConfig, ...], queue_size: int = 10_000,
                 max_age: float = 0.0) -> None:
        # One read from a busy IRC server can hold a thousand lines, all emitted
        # before a worker runs: the bound must absorb such a burst, not drop it.
        self.links = links
        self.queue_size = queue_size
        self.max_age = max_age
        self.adapters: dict[str, Adapter] = {}
        self.queues: dict[Endpoint, EndpointQueue] = {}
        self.stats = RelayStats()  # set before the first event to count them all
        # For each endpoint: (other endpoint, its config, origin's config), deduplicated.
        self.routes: dict[Endpoint, list[tuple[Endpoint, EndpointConfig, EndpointConfig]]] = {}
        for link in links:
            for origin in link.endpoints:
                routes = self.routes.setdefault(Endpoint(origin.network, origin.room), [])
                for target in link.endpoints:
                    to = Endpoint(target.network, target.room)
                    if target is not origin and all(to != r[0] for r in routes):
                        routes.append((to, target, origin))
        self.privates = PrivateRoutes(self.adapters, self.routes,
                                      lambda to, event: self._queue(to).put(event))

    def add_adapter(self, adapter: Adapter) -> None:
        self.adapters[adapter.network] = adapter
        for link in self.links:
            for ep in link.endpoints:
                if ep.network == adapter.network:
                    adapter.add_endpoint(ep.room, {"topic": ep.topic, "puppets": ep.puppets,
                                                   "passphrase": ep.passphrase, "link": link.name,
                                                   "xmpp_users": ep.xmpp_users})

    def receive(self, event: Event) -> None:
        """The sink every adapter emits into; never blocks. Events from `BRIDGE` are the
        adapter's own notices about its endpoint, for the rest of the link."""
        origin = self.adapters.get(event.endpoint.network)
        if origin is None or (event.sender != BRIDGE and origin.is_own(event.sender)):
            return
        if isinstance(event, Private):
            self.privates.route(event)
            return
        for to, target, source in self.routes.get(event.endpoint, ()):
            if isinstance(event, Topic) and not (source.topic in ("both", "out")
                                                 and target.topic in ("both", "in")):
                continue
            if self.adapters[to.network].wants(event):
                self._queue(to).put(event)

    def announce(self, endpoints: list[Endpoint], text: str) -> None:
        """Send a notice from the bridge itself to `endpoints`."""
        for endpoint in endpoints:
            self._queue(endpoint).put(Message(endpoint, BRIDGE, text, MessageKind.NOTICE))

    def _queue(self, endpoint: Endpoint) -> EndpointQueue:
        queue = self.queues.get(endpoint)
        if queue is None:
            queue = EndpointQueue(endpoint, self.adapters[endpoint.network], self.queue_size,
                                  self.max_age, self.privates.refuse, self.stats)
            self.queues[endpoint] = queue
        return queue

    async def run(self) -> None:
        """Deliver queued events until cancelled."""
        for endpoint in [*self.routes, *(Endpoint(network, "") for network in self.adapters)]:
            self._queue(endpoint)  # room "": the network's private messages
        async with asyncio.TaskGroup() as tasks:
            for queue in self.queues.values():
                tasks.create_task(queue.work(), name=f"deliver {queue.endpoint}")
