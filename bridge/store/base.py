"""The store interface: everything the bridge remembers across restarts.

One small interface; no SQL outside `bridge/store/`. Calls are synchronous and
cheap (served from memory where possible); writes reach disk in short group
commits (see `SqliteStore.flush`). `bridge.store.open_store` picks the backend by URL.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.core.events import Identity


class StoreUnavailable(Exception):
    """The store's database cannot be reached (on start, after waiting for it)."""


@dataclass(frozen=True, slots=True)
class PuppetRecord:
    """A foreign identity's XMPP face: JID local part (stable) and current nick."""

    localpart: str
    nick: str


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One line of a portal room's history: its id (stanza-id, MAM id), when, who, what."""

    uuid: str
    time: float
    nick: str
    body: str


class JsonList:
    """The newest `size` items of a list, each kept as JSON text: a cursor saved in every
    turn of the event loop then costs a join, not a dump of the whole list."""

    def __init__(self, items: Iterable[Any], size: int) -> None:
        self._parts: collections.deque[str] = collections.deque(map(json.dumps, items), maxlen=size)

    def append(self, item: Any) -> None:
        self._parts.append(json.dumps(item))

    def json(self) -> str:
        return "[" + ",".join(self._parts) + "]"


class Store(Protocol):
    def puppet(self, identity: Identity) -> PuppetRecord:
        """The puppet for `identity`, created on first sight and stable after."""

    def rename_puppet(self, identity: Identity, nick: str) -> PuppetRecord:
        """Record `identity`'s new display nick; the local part stays."""

    def identity_for_localpart(self, localpart: str) -> Identity | None:
        """Which foreign identity a puppet JID local part belongs to."""

    def map_message(self, link: str, origin_id: str, endpoint: str, native_id: str) -> None:
        """Remember that message `origin_id` of `link` is `native_id` on `endpoint`."""

    def find_message(self, link: str, origin_id: str, endpoint: str, first: bool = False) -> str | None:
        """The native id of message `origin_id` of `link` on `endpoint`, if known: the newest
        name it got there, or the `first` (the id it was sent with)."""

    def find_origin(self, link: str, endpoint: str, native_id: str) -> str | None:
        """Which message of `link` is called `native_id` on `endpoint`, if known."""

    def prune(self, now: float | None = None, keep: int | None = None) -> None:
        """Forget message-id mappings too old and all but the newest `keep`, and puppets
        unseen for long."""

    def add_history(self, owner: str, room: str, when: float, nick: str, body: str, keep: int) -> str:
        """Keep a line said in portal room `room` (a bare JID) for user `owner`, the newest
        `keep` per room; returns its id."""

    def history(self, owner: str, room: str, limit: int, *, after: str | None = None,
                before: str | None = None, start: float | None = None, end: float | None = None,
                newest: bool = True) -> list[HistoryLine] | None:
        """Up to `limit` lines of `owner`'s copy of `room`, oldest first: the newest of those
        that match (`newest`), else the oldest; after / before the line with that id, from
        `start` to `end` (Unix times). None: no line has the id `after` or `before` names."""

    def pinned_key(self, network: str, host: str) -> str | None:
        """The pinned public-key fingerprint of a server, if any."""

    def pin_key(self, network: str, host: str, fingerprint: str) -> None:
        """Pin a server's public-key fingerprint (trust on first use)."""

    def cursor(self, name: str) -> object | None:
        """A position kept across restarts (what a room was last heard saying), if any:
        JSON values (numbers, strings, lists, dicts)."""

    def set_cursor(self, name: str, value: object) -> None:
        """Move a cursor; cheap, written with the next group commit."""

    def save_cursor(self, name: str, value: object) -> None:
        """Move a cursor and have it on disk by the end of this event-loop turn (a value
        with a `json()` method is written as that text)."""

    async def prepare(self, identities: Iterable[Identity]) -> None:
        """Have these identities' puppets in memory before a synchronous call needs them
        (a store that reads its disk on the spot does nothing)."""

    async def prepare_messages(self, lookups: Iterable[tuple[str, str, str, str]]) -> None:
        """Have every name of the messages `lookups` name in memory before `find_origin` and
        `find_message` need them: each as (link, endpoint, native id, the origin id it has if
        it was said there)."""

    def flush(self) -> None:
        """Commit pending writes now (or have them committed soon, without waiting)."""

    async def commit(self) -> bool:
        """Flush and wait until it is done: True if it was."""

    def close(self) -> None:
        """Flush and close (what cannot be written without waiting may be lost: `aclose`)."""

    async def aclose(self) -> None:
        """Commit what is pending, waiting for it within a bound, and close."""
