"""The message-id map: what one relayed message is called on each endpoint of its link.

A message is known by where it was said and the id it got there (`origin_key`). Each
endpoint it reaches records the id it got there (`remember`), and an endpoint may record
a second name for it (an XMPP message is known by the room's stanza-id and by the id its
client gave it). `translate` answers what corrections, replies, reactions and retractions
need: the message called `native_id` on one endpoint, what is it called on another?

The newest `memory` entries are answered from memory; all go to the store, which keeps
them for `MESSAGE_TTL` and at most `limit` of them (pruned every `prune_every` writes, and
by the app now and then). A store that answers from memory only (PostgreSQL's) loads the
older ones an event refers to before the event is delivered: the router awaits `prepare`.
A name translated as an event arrives (an XMPP room's stanza-id or client id for the
message a correction names) may be unknown then; the event carries it as it came, and the
read-ahead finds the message by any of its names. Endpoints that give no ids (SILC, an IRC
server without `msgid`) record nothing: their messages cannot be referred to.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from bridge.core.events import Endpoint, Event, Message, Reaction, Retraction
from bridge.store.base import Store

#: Entries answered from memory (each direction).
MEMORY = 4096
#: Mappings kept in the store.
LIMIT = 200_000
#: The store is pruned after this many writes.
PRUNE_EVERY = 10_000
_SEP = "\x1f"  # between endpoint and id in an origin key; XML cannot carry it


def origin_key(endpoint: Endpoint, native_id: str) -> str:
    return f"{endpoint}{_SEP}{native_id}"


def references(event: Event) -> tuple[str, ...]:
    """The ids (on `event`'s endpoint) of the earlier messages `event` names: the one it
    corrects or answers, reacts to or retracts."""
    if isinstance(event, Message):
        return tuple(ref for ref in (event.replaces, event.reply_to) if ref is not None)
    if isinstance(event, Reaction | Retraction):
        return (event.target,)
    return ()


class MessageIds:
    def __init__(self, store: Store, *, memory: int = MEMORY, limit: int = LIMIT,
                 prune_every: int = PRUNE_EVERY) -> None:
        self.store = store
        self.memory = memory
        self.limit = limit
        self.prune_every = prune_every
        # (link, origin key, endpoint) -> (first name there, newest name there)
        self._native: collections.OrderedDict[tuple[str, str, str], tuple[str, str]] = \
            collections.OrderedDict()
        self._origin: collections.OrderedDict[tuple[str, str, str], str] = collections.OrderedDict()
        self.writes = 0

    def __len__(self) -> int:
        return len(self._native) + len(self._origin)

    def remember(self, link: str, origin: Endpoint, origin_id: str, endpoint: Endpoint,
                 native_id: str) -> None:
        """The message `origin_id` said on `origin` is called `native_id` on `endpoint`."""
        key, where = origin_key(origin, origin_id), str(endpoint)
        if key == origin_key(endpoint, native_id):
            return
        names = self._native.get((link, key, where))
        self._keep(self._native, (link, key, where), (names[0] if names else native_id, native_id))
        self._keep(self._origin, (link, where, native_id), key)
        self.store.map_message(link, key, where, native_id)
        self.writes += 1
        if self.writes % self.prune_every == 0:
            self.store.prune(keep=self.limit)

    def alias(self, link: str, endpoint: Endpoint, native_id: str, other_id: str) -> None:
        """The message called `native_id` on `endpoint` is called `other_id` there too."""
        key = self._origin.get((link, str(endpoint), native_id)) or self.store.find_origin(
            link, str(endpoint), native_id)
        if key is not None:
            origin, _, origin_id = key.partition(_SEP)
            self.remember(link, Endpoint(*origin.split("/", 1)), origin_id, endpoint, other_id)

    def translate(self, link: str, endpoint: Endpoint, native_id: str, to: Endpoint,
                  sent: bool = False) -> str | None:
        """What the message called `native_id` on `endpoint` is called on `to`, if known: its
        newest name there (an XMPP room's stanza-id, which replies and reactions use), or
        the id it was `sent` with (which corrections use, XEP-0308 section 3)."""
        where = str(endpoint)
        key = self._origin.get((link, where, native_id))
        if key is None:
            key = self.store.find_origin(link, where, native_id) or origin_key(endpoint, native_id)
        origin, _, origin_id = key.partition(_SEP)
        if origin == str(to):
            return origin_id
        names = self._native.get((link, key, str(to)))
        if names is not None:
            return names[0] if sent else names[1]
        return self.store.find_message(link, key, str(to), first=sent)

    async def prepare(self, links: Iterable[str], event: Event, to: Endpoint) -> None:
        """Have at hand what `translate` needs for the messages `event` names, on its way to
        `to` in one of `links`: the store loads those it has on disk only, in one read."""
        named = references(event)
        if not named:  # most messages: nothing to read ahead
            return
        where = str(event.endpoint)
        lookups = [(link, where, native_id, origin_key(event.endpoint, native_id))
                   for native_id in named for link in links
                   if self.translate(link, event.endpoint, native_id, to) is None]
        if lookups:
            await self.store.prepare_messages(lookups)

    def _keep(self, table: collections.OrderedDict, key: tuple[str, str, str], value: str) -> None:
        table[key] = value
        table.move_to_end(key)
        if len(table) > self.memory:
            table.popitem(last=False)
