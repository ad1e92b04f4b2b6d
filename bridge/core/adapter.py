"""The contract between the core and a network adapter.

An adapter owns its network's connections. It learns which rooms to serve
(`add_endpoint`) before `run`, and more or fewer of them while it runs (a reload:
`add_endpoint`, `remove_endpoint`), emits events it sees there through `emit`, and
delivers events from other endpoints through `deliver`. It never emits events
caused by the bridge's own clients or puppets, and `is_own` lets the router
check that again. What the bridge has to say about an endpoint (a gap, a paused
link) an adapter emits as a NOTICE `Message` from `BRIDGE`: it is shown on the
other endpoints of the link. A `Private` (one person writing to one person elsewhere)
is delivered with room "" to the recipient's adapter, which raises `Undeliverable` when
it cannot; the sender's adapter then `refuse`s it: it tells the sender why.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any

from bridge.core.events import Event, Identity, Private
from bridge.core.profile import Profile
from bridge.core.users import Usage

EventSink = Callable[[Event], None]


class Adapter(abc.ABC):
    #: What people call this network's protocol ("IRC"), in what the bridge tells them.
    protocol = ""

    def __init__(self, network: str, emit: EventSink) -> None:
        self.network = network
        self.emit = emit

    @abc.abstractmethod
    def add_endpoint(self, room: str, options: Mapping[str, Any]) -> None:
        """Serve `room` (join it once connected, rejoin after reconnects); while running,
        join it soon."""

    def remove_endpoint(self, room: str) -> None:
        """Stop serving `room` (a reload unlinked it): leave it and forget it. An adapter
        that serves no rooms has none to leave."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Connect and stay connected (reconnect with backoff) until cancelled."""

    @abc.abstractmethod
    async def deliver(self, room: str, event: Event) -> None:
        """Show `event`, which happened on another endpoint of a link, in `room`.

        May wait (flood control); must not raise for network trouble: log and drop.
        A `Private` comes with room "" and its `to_address` filled in; one this network
        cannot deliver raises `bridge.core.private.Undeliverable`.
        """

    @abc.abstractmethod
    def is_own(self, identity: Identity) -> bool:
        """True if `identity` is one of the bridge's own clients or puppets."""

    def wants(self, event: Event) -> bool:
        """False for kinds of event this network does not show: they never enter its queue,
        where they would only push real messages out."""
        return True

    def reach(self, room: str, nick: str) -> str | None:
        """The address of whoever is called `nick` in `room` (in any room of this network's
        when ""), for a private message to them; None: nobody is."""
        return None

    def refuse(self, event: Private, why: str) -> None:
        """Tell the sender of `event` (someone on this network) that it was not delivered,
        and `why`."""

    async def profile(self, identity: Identity) -> Profile:
        """What this network says about `identity` (for its XMPP contact card). Answers
        within a few seconds, network trouble or not."""
        return Profile(identity.nick, self.network, self.protocol)

    def security(self, room: str | None = None) -> list[str]:
        """One line per leg: how this network's connections are protected (for `room`
        only, where rooms differ; all of them when None)."""
        return []

    def own_clients(self) -> Usage | None:
        """XMPP users' own clients on this network (`xmpp_users: connect`), if any room has them."""
        return None

    def connected(self) -> bool:
        """True while the network's connection is up and usable (registered, in session)."""
        return False

    def in_room(self, room: str) -> bool:
        """True while the bridge is in `room`."""
        return False

    def reconnect(self) -> None:
        """Drop the connection now (an operator asked); `run` connects again."""

    async def close(self) -> None:
        """Leave politely (QUIT, unavailable presence); called once on shutdown."""
