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
from typing import Protocol

import structlog

from bridge.config_types import EndpointConfig, LinkConfig
from bridge.core.adapter import Adapter
from bridge.core.events import BRIDGE, Endpoint, Event, Message, MessageKind, Private, Topic
from bridge.core.notices import stale_text
from bridge.core.private import PrivateRoutes, Undeliverable
from bridge.core.reload import endpoint_options

log = structlog.get_logger(__name__)


class RelayStats:
    """What the router counts, once per delivery (never per stanza parsed): nothing here;
    `bridge.ops.metrics` counts for real."""

    def relayed(self, origin: Endpoint, target: Endpoint, latency: float | None) -> None:
        """A message from `origin` was handed to `target`'s adapter, `latency` seconds after
        it arrived (None: a late replay, whose time is when it was said)."""

    def dropped(self, target: Endpoint, reason: str, count: int = 1) -> None:
        """Events for `target` that were not delivered, and why."""


class Barrier(Protocol):
    """What a delivery waits for: the store's writes made before its event came in
    (`bridge.store.postgres.PostgresStore.durable`)."""

    def mark(self) -> int: ...

    async def durable(self, mark: int) -> None: ...


class EndpointQueue:
    """Bounded FIFO feeding one endpoint's adapter, oldest dropped when full."""

    def __init__(self, endpoint: Endpoint, adapter: Adapter, size: int, max_age: float = 0.0,
                 refuse: Callable[[Private, str], None] | None = None,
                 stats: RelayStats | None = None, relaying: asyncio.Event | None = None,
                 barrier: Barrier | None = None) -> None:
        self.endpoint = endpoint
        self.adapter = adapter
        self.stats = stats or RelayStats()
        self.refuse = refuse or (lambda event, why: None)
        self.max_age = max_age
        self.items: collections.deque[tuple[int, Event]] = collections.deque(maxlen=size)  # (mark, event)
        self.ready = asyncio.Event()
        self.relaying = relaying  # cleared: deliveries wait (the router is paused)
        self.barrier = barrier
        self.dropped = 0
        self.stale = 0

    def put(self, event: Event) -> None:
        if len(self.items) == self.items.maxlen:
            self.dropped += 1
            self.stats.dropped(self.endpoint, "queue full")
            if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8, ... drops
                log.warning("relay_queue_overflow", network=self.endpoint.network,
                            room=self.endpoint.room, dropped=self.dropped)
        self.items.append((self.barrier.mark() if self.barrier else 0, event))
        self.ready.set()

    async def work(self) -> None:
        while True:
            await self.ready.wait()
            stale: list[str] = []
            while self.items:
                mark, event = self.items.popleft()
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
                await self._deliver(event, mark)
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

    async def _deliver(self, event: Event, mark: int = 0) -> None:
        if self.barrier is not None and mark:
            await self.barrier.durable(mark)
        if self.relaying is not None:
            await self.relaying.wait()
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
                 max_age: float = 0.0, barrier: Barrier | None = None) -> None:
        # One read from a busy IRC server can hold a thousand lines, all emitted
        # before a worker runs: the bound must absorb such a burst, not drop it.
        self.links = links
        self.queue_size = queue_size
        self.max_age = max_age
        self.adapters: dict[str, Adapter] = {}
        self.queues: dict[Endpoint, EndpointQueue] = {}
        self.workers: dict[Endpoint, asyncio.Task] = {}
        self._tasks: asyncio.TaskGroup | None = None  # while running: where workers start
        self.stats = RelayStats()  # set before the first event to count them all
        self.relaying = asyncio.Event()
        self.relaying.set()
        self.barrier = barrier  # a standby's: see `Barrier`
        # For each endpoint: (other endpoint, its config, origin's config), deduplicated.
        self.routes: dict[Endpoint, list[tuple[Endpoint, EndpointConfig, EndpointConfig]]] = _routes(links)
        self.privates = PrivateRoutes(self.adapters, self.routes,
                                      lambda to, event: self._queue(to).put(event))

    def add_adapter(self, adapter: Adapter) -> None:
        """Serve `adapter`'s network: before `run`, or while running (a reload added the
        network, or replaced its adapter: its queues then feed the new one)."""
        self.adapters[adapter.network] = adapter
        for link in self.links:
            for ep in link.endpoints:
                if ep.network == adapter.network:
                    adapter.add_endpoint(ep.room, endpoint_options(link, ep))
        for endpoint, queue in self.queues.items():
            if endpoint.network == adapter.network and queue.adapter is not adapter:
                queue.adapter = adapter
                self._restart(queue)
        if self._tasks is not None:
            self._open(adapter.network)

    def remove_adapter(self, network: str) -> None:
        """Stop serving `network` (a reload removed it): what waits for it is dropped."""
        self.adapters.pop(network, None)
        for endpoint in [e for e in self.queues if e.network == network]:
            self._close(endpoint)

    def reconfigure(self, links: tuple[LinkConfig, ...]) -> None:
        """Route by `links` from now on (a reload): endpoints no longer linked lose their
        queue (what waited is dropped, counted), new ones get one once their network has
        an adapter. Adapters are told about their rooms by the caller."""
        self.links = links
        self.routes.clear()  # in place: `privates` reads the same dict
        self.routes.update(_routes(links))
        for endpoint in [e for e in self.queues if e.room and e not in self.routes]:
            self._close(endpoint)
        if self._tasks is not None:
            for network in self.adapters:
                self._open(network)

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

    def pause(self, paused: bool) -> None:
        """Hold every delivery (events stay queued, within the queues' bounds and `max_age`),
        or let them go again: a standby's leader unsure whether it still leads."""
        if paused:
            self.relaying.clear()
        else:
            self.relaying.set()
        log.warning("relay_paused" if paused else "relay_resumed")

    def _queue(self, endpoint: Endpoint) -> EndpointQueue:
        queue = self.queues.get(endpoint)
        if queue is None:
            queue = EndpointQueue(endpoint, self.adapters[endpoint.network], self.queue_size,
                                  self.max_age, self.privates.refuse, self.stats, self.relaying,
                                  self.barrier)
            self.queues[endpoint] = queue
            if self._tasks is not None:
                self._restart(queue)
        return queue

    def _open(self, network: str) -> None:
        """A queue (and its worker) for each routed endpoint of `network`, and for its
        private messages (room "")."""
        self._queue(Endpoint(network, ""))
        for endpoint in self.routes:
            if endpoint.network == network:
                self._queue(endpoint)

    def _restart(self, queue: EndpointQueue) -> None:
        worker = self.workers.pop(queue.endpoint, None)
        if worker is not None:
            worker.cancel()
        if self._tasks is not None:
            self.workers[queue.endpoint] = self._tasks.create_task(
                queue.work(), name=f"deliver {queue.endpoint}")

    def _close(self, endpoint: Endpoint) -> None:
        queue = self.queues.pop(endpoint)
        worker = self.workers.pop(endpoint, None)
        if worker is not None:
            worker.cancel()
        if queue.items:
            self.stats.dropped(endpoint, "unlinked", len(queue.items))
            log.info("relay_queue_dropped", network=endpoint.network, room=endpoint.room,
                     dropped=len(queue.items))

    async def run(self) -> None:
        """Deliver queued events until cancelled; endpoints added later get their worker
        when they get their queue."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                for queue in list(self.queues.values()):  # the ones announced to already
                    self._restart(queue)
                for network in self.adapters:
                    self._open(network)
                await asyncio.Future()  # workers come and go; the group stays open
            finally:
                self._tasks = None


def _routes(links: tuple[LinkConfig, ...]) -> dict[Endpoint, list[tuple[Endpoint, EndpointConfig, EndpointConfig]]]:
    routes: dict[Endpoint, list[tuple[Endpoint, EndpointConfig, EndpointConfig]]] = {}
    for link in links:
        for origin in link.endpoints:
            out = routes.setdefault(Endpoint(origin.network, origin.room), [])
            for target in link.endpoints:
                to = Endpoint(target.network, target.room)
                if target is not origin and all(to != r[0] for r in out):
                    out.append((to, target, origin))
    return routes
