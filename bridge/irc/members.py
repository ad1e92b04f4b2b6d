"""Who is in a channel: one table per (network, channel) for every portal connection in it.

K portal users in one channel each get the channel's events on their own connection; each
keeping the member list made K^2 entries (43 KiB a connection at K = 1000). Here they share
one `Table`. An IRC server sends a channel's events to its members in one order (a copy of
the same line to each), so the table logs the events that changed it and each connection's
`Channel` keeps its place in that log: the first connection to read an event applies it and
logs what the members it touched were before; the others find it at their place and tell
their users from the logged state. So QUIT, NICK and MODE are applied once, and "was X here,
with which modes?" is still answered for each connection as of its own place. What every
connection has read is dropped; the log is bounded (`LOG_LIMIT`).

A connection's place is where its own JOIN is in the log. Connections already in the channel
log it when they read it; one that reads its own JOIN before they do starts on a table of its
own (from its NAMES) and moves to the shared one once its JOIN is logged there and the events
after it match (`Channel.merge`). One that reads another event than the one at its place
(servers of one network may order two events differently), or whose NAMES disagree with the
table, goes on with a table of its own (`Channel.fork`): alone, but right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

import structlog

log = structlog.get_logger(__name__)

#: A member as of some place: (nick, prefix modes held), or None when not in the channel.
State = tuple[str, str] | None
#: Events a table keeps for connections that have not read them yet.
LOG_LIMIT = 4096
#: Events a connection on a table of its own reads while it may still move to the shared one.
ALONE_LIMIT = 256


@dataclass(slots=True)
class Entry:
    key: tuple  # what identifies the event: ("join", folded nick), ("mode", *arguments)...
    before: dict[str, State]  # each member it touched (folded) as they were before it


class Table:
    """One channel's members on one network, as of the newest event any connection read."""

    __slots__ = ("members", "modes", "log", "base", "readers", "expected", "movers", "settled", "topic",
                 "topic_by", "secret", "version", "_frozen", "_home", "_key")

    def __init__(self, home: dict | None = None, key: object = None) -> None:
        """`home[key]` is this table while a connection reads it (dropped after the last)."""
        self.members: dict[str, str] = {}  # folded nick -> nick
        self.modes: dict[str, str] = {}  # folded nick -> prefix modes held, if any
        self.log: list[Entry] = []  # short: what the slowest connection has still to read
        self.base = 0  # the place of log[0]
        self.readers: dict[int, int] = {}  # place -> connections there
        #: Nicks of connections whose JOIN went -> the connection, until its JOIN is logged;
        #: then the place of that JOIN (a reader there, kept for it until it comes).
        self.expected: dict[str, Channel | int] = {}
        self.movers: dict[Channel, None] = {}  # on a table of their own, their JOIN logged here
        self.settled = False  # a connection's NAMES have been taken
        self.topic = ""
        self.topic_by = ""
        self.secret = False  # NAMES said "@" (+s) or "*" (+p)
        self.version = 0  # members changed
        self._frozen: tuple[int, dict[str, str]] | None = None
        self._home, self._key = home, key

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def state(self, at: int, folded: str) -> State:
        """`folded` as of place `at`."""
        for entry in islice(self.log, at - self.base, None):
            if folded in entry.before:
                return entry.before[folded]
        nick = self.members.get(folded)
        return None if nick is None else (nick, self.modes.get(folded, ""))

    def everyone(self, at: int) -> dict[str, tuple[str, str]]:
        """Every member as of place `at`: folded nick -> (nick, modes)."""
        now = {folded: (nick, self.modes.get(folded, "")) for folded, nick in self.members.items()}
        for entry in reversed(self.log[at - self.base:]):
            for folded, state in entry.before.items():
                if state is None:
                    now.pop(folded, None)
                else:
                    now[folded] = state
        return now

    def nicks(self, at: int) -> dict[str, str]:
        """folded nick -> nick as of `at`; one copy for every connection asking at the end."""
        if at != self.end:
            return {folded: state[0] for folded, state in self.everyone(at).items()}
        if self._frozen is None or self._frozen[0] != self.version:
            self._frozen = (self.version, dict(self.members))
        return self._frozen[1]

    def _restart(self) -> None:
        """Forget the members and the log (no connection reads them), for a NAMES to come."""
        self.members, self.modes, self.settled = {}, {}, False
        self.base = self.end
        self.log.clear()
        self.version += 1

    def _set(self, folded: str, state: State) -> None:
        self.version += 1
        if state is None:
            self.members.pop(folded, None)
            self.modes.pop(folded, None)
            return
        self.members[folded] = state[0]
        if state[1]:
            self.modes[folded] = state[1]
        else:
            self.modes.pop(folded, None)

    def _set_at(self, at: int, folded: str, state: State) -> None:
        """Make `folded` `state` as of place `at` (what a NAMES reply there said)."""
        for entry in islice(self.log, at - self.base, None):
            if folded in entry.before:
                entry.before[folded] = state
                return
        self._set(folded, state)

    def _append(self, entry: Entry) -> None:
        if entry.key[0] == "join":
            waiting = self.expected.get(entry.key[1])
            if isinstance(waiting, Channel):  # kept for that connection until it reads it
                self.expected[entry.key[1]] = self.end
                self.readers[self.end] = self.readers.get(self.end, 0) + 1
                if waiting.placed:  # it read its JOIN first, alone: it may move here
                    self.movers[waiting] = None
        self.log.append(entry)
        if len(self.log) > LOG_LIMIT:  # a connection that reads nothing: it goes on alone
            del self.log[0]
            self.base += 1
            self.readers = {at: n for at, n in self.readers.items() if at >= self.base}
            self.expected = {nick: at for nick, at in self.expected.items()
                             if not isinstance(at, int) or at >= self.base}

    def _move(self, old: int | None, new: int | None) -> None:
        """A connection leaves place `old` for `new` (None: not a reader)."""
        if old is not None and old >= self.base:
            left = self.readers.get(old, 0) - 1
            if left > 0:
                self.readers[old] = left
            else:
                self.readers.pop(old, None)
        if new is not None:
            self.readers[new] = self.readers.get(new, 0) + 1
        while self.log and self.base not in self.readers:  # read by every connection
            del self.log[0]
            self.base += 1
        if not self.readers and not self.expected and self._home is not None \
                and self._home.get(self._key) is self:
            del self._home[self._key]


@dataclass(slots=True, eq=False)
class Channel:
    """A channel as one connection has it: its place in a table of the channel's members."""

    name: str  # as the user asked for it
    key: str = ""
    joined: bool = False  # 366 seen
    table: Table | None = None  # read from the connection's own JOIN on
    at: int = -1  # the connection's place in the table's log (-1: its JOIN not read yet)
    shared: Table | None = None  # the shared table, until the connection has its place there
    waiting: str = ""  # the connection's nick (folded) when its JOIN was sent
    names: dict[str, tuple[str, str]] | None = None  # NAMES being read
    gone: dict[str, str] = field(default_factory=dict)  # members before a rejoin: folded -> nick

    @property
    def placed(self) -> bool:
        """The connection read its own JOIN: the channel's events are its to read."""
        return self.at >= 0

    def expect(self, shared: Table, folded: str) -> None:
        """The connection sent its JOIN, as `folded`."""
        self.leave()
        self.shared, self.waiting = shared, folded
        shared.expected.setdefault(folded, self)

    def sit(self, folded: str, nick: str) -> None:
        """The connection's own JOIN (NAMES follow): after the same JOIN read by another
        connection; as the first event, on a table nobody reads yet; else alone for now."""
        shared = self.shared
        if self.placed or shared is None:
            return
        if self.waiting != folded:
            self._cancel()  # it was sent under an older nick
        place = shared.expected.get(folded) if self.waiting else None
        self.joined, self.names = False, {}
        if isinstance(place, int):
            del shared.expected[folded]
            self.table, self.at, self.shared, self.waiting = shared, place, None, ""
        elif not shared.readers:  # the first: what the table still held is nobody's now
            shared._restart()
            self.table, self.at = shared, shared.end
            shared._move(None, self.at)
            self._cancel()
        else:
            self.table, self.at = Table(), 0
            self.table.readers[0] = 2  # the connection, and a pin keeping its log from the JOIN on
        self.change(("join", folded), {folded: (nick, "")})

    def leave(self) -> None:
        if self.table is not None:
            self.table._move(self.at, None)
        if self.shared is not None:
            self._cancel()
        self.table, self.at, self.shared, self.names, self.joined = None, -1, None, None, False

    def _cancel(self) -> None:
        """Not to be placed in the shared table (left, refused, nick changed, gone on alone)."""
        shared, self.shared = self.shared, None
        held = shared.expected.get(self.waiting) if shared is not None else None
        if shared is not None:
            shared.movers.pop(self, None)
        if held is self or isinstance(held, int):
            del shared.expected[self.waiting]
            shared._move(held if isinstance(held, int) else None, None)
        self.waiting = ""

    def lost(self) -> None:
        """The connection is gone; who was here is kept to tell who left meanwhile."""
        if self.joined:
            self.gone = self.table.nicks(self._synced())  # shared, never changed in place
        self.leave()

    def member(self, folded: str) -> State:
        return self.table.state(self._synced(), folded) if self.placed else None

    def everyone(self) -> dict[str, tuple[str, str]]:
        return self.table.everyone(self._synced()) if self.placed else {}

    def change(self, key: tuple, after: dict[str, State]) -> None:
        """The connection read the event `key`, which leaves the members in `after` so (from
        their state as of this place): applied if it is new, only passed if logged."""
        at = self._synced()
        table = self.table
        if at == table.end:
            before = {folded: table.state(at, folded) for folded in after}
            for folded, state in after.items():
                table._set(folded, state)
            table._append(Entry(key, before))
        elif table.log[at - table.base].key != key:
            self.fork(f"read {key[0]} where the table has {table.log[at - table.base].key[0]}")
            return self.change(key, after)
        self.at = at + 1
        table._move(at, self.at)
        for mover in list(table.movers):  # the log may have come as far as they are
            mover.merge()
        if self.shared is not None:
            self.merge()
        if self.shared is not None and self.at > ALONE_LIMIT:  # its JOIN never logged there
            self._cancel()
            table._move(0, None)

    def take_names(self, top: Callable[[str], str]) -> None:
        """End of NAMES: what they said is the channel as of this place (for the first
        connection), or must be (for the next: `top(modes)` is the most significant mode)."""
        at = self._synced()
        table, names, self.names = self.table, self.names or {}, None
        if not table.settled:
            for folded in table.everyone(at).keys() - names.keys():
                table._set_at(at, folded, None)
            for folded, state in names.items():
                table._set_at(at, folded, state)
            table.settled = True
        elif not _same(table.everyone(at), names, top):
            self.fork("NAMES differ", names)
        if self.shared is not None:
            self.merge()

    def merge(self) -> None:
        """Move from the table of its own to the shared one, if its JOIN is logged there and
        everything it read since is too, in the same order, leaving the same members."""
        shared, mine = self.shared, self.table
        place = shared.expected.get(self.waiting) if shared is not None else None
        if not isinstance(place, int) or mine is None or self.names is not None:
            return  # not logged there yet, or its NAMES still being read
        read = self.at - 1  # events since its own JOIN
        if shared.end - (place + 1) < read:
            return  # the shared table has not come that far: later
        same = mine.base == 0 and all(
            shared.log[place + 1 + i - shared.base].key == mine.log[1 + i].key for i in range(read)) \
            and shared.everyone(place + 1 + read) == mine.everyone(self.at)
        if not same:
            log.info("portal_members_apart", reason="events differ")
            self._cancel()
            mine._move(0, None)  # its log no longer kept
            return
        del shared.expected[self.waiting]
        shared.movers.pop(self, None)
        shared._move(place, place + 1 + read)
        self.table, self.at, self.shared, self.waiting = shared, place + 1 + read, None, ""

    def fork(self, why: str, members: dict[str, tuple[str, str]] | None = None) -> None:
        """Go on with a table of this connection's own: the shared one as of this place (or
        `members`)."""
        old = self.table
        members = old.everyone(min(max(self.at, old.base), old.end)) if members is None else members
        log.info("portal_members_forked", reason=why, members=len(members))
        table = Table()
        table.settled, table.topic, table.topic_by, table.secret = True, old.topic, old.topic_by, old.secret
        for folded, state in members.items():
            table._set(folded, state)
        joined, names = self.joined, self.names
        self.leave()
        self.table, self.at, self.joined, self.names = table, 0, joined, names
        table._move(None, 0)

    def _synced(self) -> int:
        """This connection's place; one the bound dropped goes on with a table of its own."""
        if self.at < self.table.base:
            self.fork("too far behind")
        return self.at


def _same(ours: dict[str, tuple[str, str]], names: dict[str, tuple[str, str]], top: Callable[[str], str]) -> bool:
    """Do the table and NAMES agree (NAMES may show only the highest mode: multi-prefix)?"""
    return ours.keys() == names.keys() and all(
        ours[f][0] == s[0] and top(ours[f][1]) == top(s[1]) for f, s in names.items())

