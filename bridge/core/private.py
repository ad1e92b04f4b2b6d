"""Private messages between networks: whom each one is for, and the answer when it
cannot be delivered. Network-neutral.

Someone on one network writes to one person on another: an XMPP user to a puppet (a MUC
private message, or a direct chat to its JID), an IRC or SILC user to the relay client
(`alice: text`). The sender's adapter emits a `Private`; `PrivateRoutes` finds the
recipient (the address the sender's adapter knew, else the nick among the people in the
rooms linked to where it was written), paces each sender, and queues it for the
recipient's adapter. Nothing is dropped in silence: what cannot be delivered goes back to
the sender's adapter, which tells the sender why (an XMPP error stanza, an IRC NOTICE, a
SILC message).
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import structlog

from bridge.core.adapter import Adapter
from bridge.core.events import Endpoint, Private
from bridge.core.ratelimit import TokenBucket

log = structlog.get_logger(__name__)

#: Private messages one sender may send at once, then one every PACE seconds; pacing is
#: kept for this many senders (the least recent forgotten).
BURST = 10
PACE = 2.0
SENDERS = 4096
#: Conversations remembered per person (whom they last wrote to or heard from) and people.
PARTNERS = 8
PEOPLE = 1024

#: `name: text`, the name without colons, up to 64 characters.
_ADDRESSED = re.compile(r"([^:]{1,64}?):\s+(\S.*)", re.DOTALL)

Routes = Mapping[Endpoint, Sequence[tuple[Endpoint, object, object]]]


class Undeliverable(Exception):
    """An adapter cannot deliver a `Private`: str(exc) tells the sender why."""


class PrivateRoutes:
    """The router's part for private messages."""

    def __init__(self, adapters: Mapping[str, Adapter], routes: Routes,
                 put: Callable[[Endpoint, Private], None]) -> None:
        """`put(Endpoint(network, ""), event)` queues `event` for `network`'s adapter."""
        self.adapters = adapters
        self.routes = routes
        self.put = put
        self.buckets: collections.OrderedDict[tuple[str, str], TokenBucket] = collections.OrderedDict()

    def route(self, event: Private) -> None:
        if not self._pace(event):
            self.refuse(event, "too many private messages at once: wait a moment, then send it again")
            return
        found = self._find(event)
        if found is None:
            where = f"the rooms linked to {event.endpoint.room}" if event.endpoint.room else "the linked rooms"
            self.refuse(event, f"nobody called {event.to_nick} is in {where}")
            return
        self.put(Endpoint(found.to_network, ""), found)

    def refuse(self, event: Private, why: str) -> None:
        log.info("private_undelivered", network=event.endpoint.network, room=event.endpoint.room,
                 to_network=event.to_network, to=event.to_nick, why=why)
        adapter = self.adapters.get(event.endpoint.network)
        if adapter is not None:
            adapter.refuse(event, why)

    def _find(self, event: Private) -> Private | None:
        """`event` with the recipient's network and address filled in, or None: nobody."""
        if event.to_network and event.to_address:
            return event if event.to_network in self.adapters else None
        rooms = dict.fromkeys(r for r in (event.endpoint.room, *event.rooms) if r)
        for room in rooms:
            for to, _, _ in self.routes.get(Endpoint(event.endpoint.network, room), ()):
                if event.to_network in ("", to.network):
                    address = self.adapters[to.network].reach(to.room, event.to_nick)
                    if address:
                        return replace(event, to_network=to.network, to_address=address)
        # The sender named a puppet of that network's: whoever has that nick there now.
        adapter = self.adapters.get(event.to_network)
        address = adapter.reach("", event.to_nick) if adapter is not None else None
        return replace(event, to_address=address) if address else None

    def _pace(self, event: Private) -> bool:
        key = event.sender.key
        bucket = self.buckets.pop(key, None) or TokenBucket(BURST, PACE)
        self.buckets[key] = bucket
        if len(self.buckets) > SENDERS:
            self.buckets.popitem(last=False)
        if bucket.delay() > 0:
            return False
        bucket.spend()
        return True


@dataclass(frozen=True, slots=True)
class Partner:
    """Someone a person has a private conversation with, on another network."""

    nick: str
    network: str
    address: str


class Partners:
    """Whom each person (on a network without addresses for the other side's people: IRC,
    SILC) last talked to privately, so `alice: text` and a bare line find them again.

    What a person writes to the relay client: `name: text` is for `name`, someone they
    talked to before, else whoever has that nick in the linked rooms (a one-word name; a
    longer one only for someone talked to before, so `so I think: yes` is no address). A
    line without a name goes to whoever they talked to last."""

    def __init__(self, fold: Callable[[str], str] = str.casefold) -> None:
        self.fold = fold
        self._people: collections.OrderedDict[str, collections.OrderedDict[str, Partner]] = \
            collections.OrderedDict()

    def talked(self, person: str, partner: Partner) -> None:
        """`person` (their nick here) wrote to or heard from `partner` just now."""
        key = self.fold(person)
        partners = self._people.pop(key, None) or collections.OrderedDict()
        self._people[key] = partners
        partners.pop(partner.nick.casefold(), None)
        partners[partner.nick.casefold()] = partner
        if len(partners) > PARTNERS:
            partners.popitem(last=False)
        if len(self._people) > PEOPLE:
            self._people.popitem(last=False)

    def addressed(self, person: str, text: str) -> tuple[Partner | None, str]:
        """Whom `person` writes `text` to, and what to send them; None: nobody."""
        match = _ADDRESSED.fullmatch(text)
        partner = self.find(person, match[1]) if match else None
        if partner is not None:
            return partner, match[2]
        if match and " " not in match[1]:
            partner = Partner(match[1], "", "")  # to be found by nick
            self.talked(person, partner)
            return partner, match[2]
        return self.find(person, None), text

    def find(self, person: str, nick: str | None) -> Partner | None:
        """Whom `person` means by `nick`, among those they talked to (None: the last one)."""
        partners = self._people.get(self.fold(person))
        if not partners:
            return None
        if nick is None:
            return next(reversed(partners.values()))
        return partners.get(nick.casefold())

    def renamed(self, old: str, new: str) -> None:
        """A person here changed nick."""
        partners = self._people.pop(self.fold(old), None)
        if partners is not None:
            self._people[self.fold(new)] = partners


class Due:
    """When each key was last due; due again after `quiet` seconds (bounded memory)."""

    def __init__(self, quiet: float) -> None:
        self.quiet = quiet
        self._last: collections.OrderedDict[object, float] = collections.OrderedDict()

    def due(self, key: object) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.quiet:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > PEOPLE:
            self._last.popitem(last=False)
        return True


def hint_text(sender: str, network: str, room: str, relay: str) -> str:
    """The line that comes before the first private message of `sender` to someone."""
    where = f", room {room}" if room else ""
    return (f"{sender} ({network}{where}) writes to you privately through muc-bridge. To answer: "
            f"/msg {relay} {sender}: your text (a line without a name goes to whoever you talked "
            "to last).")


def help_text(relay: str) -> str:
    """What someone who writes to the relay client with nobody to write to is told."""
    return (f"muc-bridge relays private messages: /msg {relay} alice: your text, to write to alice "
            "in a room linked to a channel you are in; a line without a name goes to whoever you "
            "talked to last.")
