"""Prometheus metrics (the prometheus-client library) and the health check.

Counted as they happen, once per delivery in the router's queues (`RelayStats`): messages
relayed per link and direction, events dropped per reason, relay latency. Read when
Prometheus asks (a collector, nothing on the relay path): queue depths, connection state
and reconnects per network, rooms joined, puppets per room, XMPP users' own connections per
network (open, cap, lines the relay said for want of one).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from bridge.core.events import Endpoint
from bridge.core.router import RelayStats
from bridge.ops.control import Control

#: Seconds from a message's arrival to its handing to the adapter of the other side.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics(RelayStats):
    def __init__(self, control: Control) -> None:
        self.control = control
        self.registry = CollectorRegistry()
        self._relayed = Counter("muc_bridge_messages_relayed", "Messages relayed, per link and direction",
                                ("link", "source", "target"), registry=self.registry)
        self._dropped = Counter("muc_bridge_dropped", "Events not delivered, per target and reason",
                                ("network", "room", "reason"), registry=self.registry)
        self._latency = Histogram("muc_bridge_relay_latency_seconds",
                                  "From a message's arrival to its delivery to the other side",
                                  ("target",), buckets=LATENCY_BUCKETS, registry=self.registry)
        self._links: dict[tuple[Endpoint, Endpoint], str] = {}
        self._children: dict[tuple[Endpoint, Endpoint], tuple] = {}
        self.relink()
        self.registry.register(_State(control))

    def relink(self) -> None:
        """Label by the links of the running config (again, after a reload)."""
        #: (origin, target) -> the link between them, for the label.
        self._links = {(Endpoint(a.network, a.room), Endpoint(b.network, b.room)): link.name
                       for link in self.control.config.links for a in link.endpoints for b in link.endpoints}
        self._children.clear()

    # -- RelayStats: on the relay path, so a dict lookup and two increments ---

    def relayed(self, origin: Endpoint, target: Endpoint, latency: float | None) -> None:
        children = self._children.get((origin, target))
        if children is None:
            link = self._links.get((origin, target), "")
            children = self._children[(origin, target)] = (
                self._relayed.labels(link, origin.network, target.network),
                self._latency.labels(target.network))
        children[0].inc()
        if latency is not None:
            children[1].observe(max(0.0, latency))

    def dropped(self, target: Endpoint, reason: str, count: int = 1) -> None:
        self._dropped.labels(target.network, target.room, reason).inc(count)

    # -- the pages ---------------------------------------------------------

    def page(self) -> bytes:
        return generate_latest(self.registry)


class _State:
    """What is read from the bridge when Prometheus asks."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def collect(self):
        control = self.control
        control.watch.sample()
        connected = GaugeMetricFamily("muc_bridge_connected", "1 while the network is connected",
                                      labels=("network",))
        reconnects = CounterMetricFamily("muc_bridge_reconnects", "Times the network came back",
                                         labels=("network",))
        for name, adapter in control.adapters.items():
            connected.add_metric((name,), float(adapter.connected()))
            reconnects.add_metric((name,), control.watch.states[name].reconnects)
        joined = GaugeMetricFamily("muc_bridge_room_joined", "1 while the bridge is in the room",
                                   labels=("network", "room"))
        for link in control.config.links:
            for ep in link.endpoints:
                joined.add_metric((ep.network, ep.room), float(control.adapters[ep.network].in_room(ep.room)))
        depth = GaugeMetricFamily("muc_bridge_queue_depth", "Events waiting to be delivered",
                                  labels=("network", "room"))
        for endpoint, queue in list(control.router.queues.items()):
            depth.add_metric((endpoint.network, endpoint.room), len(queue.items))
        puppets = GaugeMetricFamily("muc_bridge_puppets", "Puppets in the MUC room", labels=("room",))
        for jid, room in control.xmpp.rooms.items():
            puppets.add_metric((jid,), len(room.puppets))
        return [connected, reconnects, joined, depth, puppets, *self._own_clients()]

    def _own_clients(self):
        """XMPP users' own connections, per network with `xmpp_users: connect` rooms."""
        open_ = GaugeMetricFamily("muc_bridge_own_clients", "XMPP users' own connections open",
                                  labels=("network",))
        cap = GaugeMetricFamily("muc_bridge_own_clients_cap", "XMPP users' own connections at most",
                                labels=("network",))
        refused = CounterMetricFamily("muc_bridge_own_clients_refused",
                                      "Lines the relay said for an XMPP user because the cap was reached",
                                      labels=("network",))
        for name, adapter in self.control.adapters.items():
            usage = adapter.own_clients()
            if usage is not None:
                open_.add_metric((name,), usage.open)
                cap.add_metric((name,), usage.cap)
                refused.add_metric((name,), usage.refused)
        return [open_, cap, refused]

    def describe(self):
        return []  # unknown until collected: registered without a dry run
