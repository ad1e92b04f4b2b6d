"""The contract between the core and a network adapter.

An adapter owns its network's connections. It learns which rooms to serve
(`add_endpoint`) before `run`, emits events it sees there through `emit`, and
delivers events from other endpoints through `deliver`. It never emits events
caused by the bridge's own clients or puppets, and `is_own` lets the router
check that again. What the bridge has to say about an endpoint (a gap, a paused
link) an adapter emits as a NOTICE `Message` from `BRIDGE`: it is shown on the
other endpoints of the link.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any

from bridge.core.events import Event, Identity
from bridge.core.profile import Profile

EventSink = Callable[[Event], None]


class Adapter(abc.ABC):
    #: What people call this network's protocol ("IRC"), in what the bridge tells them.
    protocol = ""

    def __init__(self, network: str, emit: EventSink) -> None:
        self.network = network
        self.emit = emit

    @abc.abstractmethod
    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        """Serve `room` (join it once connected, rejoin after reconnects)."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect and stay connected (reconnect with backoff) until cancelled."""

    @abc.abstractmethod
    async def deliver(self, room: str, event: Event) -> None:
        """Show `event`, which happened on another endpoint of a link, in `room`.

        May wait (flood control); must not raise for network trouble: log and drop.
        """

    @abc.abstractmethod
    def is_own(self, identity: Identity) -> bool:
        """True if `identity` is one of the bridge's own clients or puppets."""

    def wants(self, event: Event) -> bool:
        """False for kinds of event this network does not show: they never enter its queue,
        where they would only push real messages out."""
        return True

    async def profile(self, identity: Identity) -> Profile:
        """What this network says about `identity` (for its XMPP contact card). Answers
        within a few seconds, network trouble or not."""
        return Profile(identity.nick, self.network, self.protocol)

    def security(self) -> list[str]:
        """One line per leg: how this network's connections are protected."""
        return []

    async def close(self) -> None:
        """Leave politely (QUIT, unavailable presence); called once on shutdown."""
