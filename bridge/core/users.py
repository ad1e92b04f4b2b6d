"""XMPP users' own clients on a foreign network, in rooms whose endpoint says `xmpp_users:
connect`: what IRC (`bridge.irc.plumbed`) and SILC (`bridge.silc.users`) share.

One client per XMPP identity (real JID, or occupant id) on the network, made when the user
first speaks in such a room (lazily, as puppets are). Until it is in the room (connecting,
reconnecting with backoff after a drop, kicked out, or over the network's cap), the user's
lines go through the relay client as `<alice> text`: nothing waits for it. It follows its
user's nick changes and leaves, and quits after `idle` seconds without a line from its user,
when its user leaves the last of its rooms, or when it could not connect for `GIVE_UP`
seconds; then, and after a kick, its user stays with the relay for `HOLD`.

A network's part is the client itself: made (`_start`), in a room and able to speak there
(`_ready`), connected (`_connected`), joining, leaving, renamed, quitting.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from bridge.core.events import Event, Identity, Kick, Message, NickChange, Part

log = structlog.get_logger(__name__)

#: How often clients are checked for idleness (at most; twice per idle time when shorter).
SWEEP = 30.0
#: A client not connected for this long quits; its user speaks through the relay for HOLD.
GIVE_UP = 300.0
HOLD = 600.0


@dataclass(frozen=True)
class Usage:
    """A network's XMPP users' own clients, for operators."""

    open: int  # clients made and not yet closed (connecting, or connected)
    cap: int  # at most this many
    refused: int  # lines said through the relay because the cap was reached (since start)


class OwnClient:
    """One XMPP user's client, and where that user is in the MUC."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.rooms: set[str] = set()  # rooms it is to be in, folded
        self.occupant = ""  # the user's occupant JID where they last spoke (room@muc/nick)
        self.last_active = time.monotonic()
        self.down_since: float | None = None  # when a sweep first found it not connected
        self.log = log


C = TypeVar("C", bound=OwnClient)


class OwnClients(abc.ABC, Generic[C]):
    """One network's XMPP users' clients: made, capped, followed and reaped."""

    def __init__(self, network: str, cap: int, idle: float, fold: Callable[[str], str] = str.casefold) -> None:
        self.network = network
        self.cap = cap  # clients at most
        self.idle = idle
        self.fold = fold  # the network's case mapping of room names
        self.rooms: set[str] = set()  # folded rooms with `xmpp_users: connect`
        self.users: dict[str, C] = {}  # identity native id ->
        self.held: dict[str, float] = {}  # native id -> monotonic time until which the relay speaks
        self._closing: set[asyncio.Task] = set()
        self._full = False  # said in the log that the cap is reached
        self.refused = 0  # lines the relay said because the cap was reached

    # The network's part

    @abc.abstractmethod
    def _start(self, identity: Identity, room: str) -> C:
        """A new client for `identity`, connecting (it joins `rooms` once in)."""

    @abc.abstractmethod
    def _ready(self, user: C, room: str) -> bool:
        """`user`'s client is in `room` and may speak there."""

    @abc.abstractmethod
    def _connected(self, user: C) -> bool: ...

    @abc.abstractmethod
    def _join(self, user: C, room: str) -> None:
        """`user`'s client is to be in `room` too (now, or once connected)."""

    @abc.abstractmethod
    def _part(self, user: C, room: str) -> None:
        """`user`'s client leaves `room` (it stays in its others)."""

    @abc.abstractmethod
    def _rename(self, user: C, nick: str, room: str) -> None:
        """`user` is called `nick` in the MUC now (`room`: where they changed it)."""

    @abc.abstractmethod
    def _quit(self, user: C, message: str) -> Awaitable[None] | None:
        """Close `user`'s client, with the QUIT message `message`: at once, so that a new
        client for the same user may start; what it returns (if anything) finishes it."""

    # What the adapter asks

    def speaker(self, room: str, event: Message) -> C | None:
        """The user whose own client says `event`, a line from elsewhere, in `room`, when it
        is an XMPP user's and their client is there; else None (the relay says it), and their
        client is made or joins the room for their next line."""
        sender = event.sender
        if self.fold(room) not in self.rooms or sender.network != "xmpp" or event.late:
            return None  # the bridge's own notices, other networks' people, replays
        user = self.users.get(sender.native_id) or self._open(sender, room)
        if user is None:
            return None
        user.identity, user.last_active = sender, time.monotonic()
        user.occupant = f"{event.endpoint.room}/{sender.nick}"
        self._enter(user, room)
        return user if self._ready(user, room) else None

    def follow(self, room: str, event: Event) -> bool:
        """A nick change, leave or kick of an XMPP user's elsewhere: their client does the
        same. True: it is done, the relay need not say it."""
        if isinstance(event, Kick) and event.target.network == "xmpp":
            kicked = self.users.get(event.target.native_id)
            if kicked is not None:
                self._leave(kicked, room, "kicked", event.reason)
            return False  # the relay says who kicked them
        user = self.users.get(event.sender.native_id) if event.sender.network == "xmpp" else None
        if user is None or self.fold(room) not in user.rooms:
            return False
        if isinstance(event, NickChange):
            user.identity = event.new_identity
            user.occupant = f"{user.occupant.rpartition('/')[0]}/{event.new_nick}"
            self._rename(user, event.new_nick, room)
            return self._ready(user, room)
        if isinstance(event, Part):
            self._leave(user, room, "left", event.reason)
            return True
        return False

    def unlinked(self, room: str) -> None:
        """`room` is no longer served (a reload unlinked it): every client leaves it."""
        self.rooms.discard(self.fold(room))
        for user in [u for u in self.users.values() if self.fold(room) in u.rooms]:
            self._leave(user, room, "unlinked", "")

    def present(self, room: str, identity: Identity) -> C | None:
        """The user `identity`, if their client is in `room` and may speak there (for what
        is theirs to do there: take back a line, react); none is made for it."""
        user = self.users.get(identity.native_id) if identity.network == "xmpp" else None
        return user if user is not None and self._ready(user, room) else None

    def client_of(self, identity: Identity) -> C | None:
        """The user `identity`, if their client is connected."""
        user = self.users.get(identity.native_id) if identity.network == "xmpp" else None
        if user is None or not self._connected(user):
            return None
        user.last_active = time.monotonic()
        return user

    def usage(self) -> Usage | None:
        """For operators; None where no room has these clients."""
        return Usage(len(self.users), self.cap, self.refused) if self.rooms else None

    def hold(self, user: C, why: str) -> None:
        """Quit `user`'s client; the relay speaks for them for HOLD (kicked, refused...)."""
        self.held[user.identity.native_id] = time.monotonic() + HOLD
        self._close(user, why)

    # Keeping them

    def _open(self, identity: Identity, room: str) -> C | None:
        """A new client for `identity`, unless over the cap or held back."""
        now = time.monotonic()
        if self.held.get(identity.native_id, 0.0) > now:
            return None
        self.held.pop(identity.native_id, None)
        if len(self.users) >= self.cap:
            self.refused += 1
            if not self._full:  # once until one closes
                log.info("xmpp_user_clients_full", network=self.network, clients=len(self.users))
                self._full = True
            return None
        user = self._start(identity, room)
        self.users[identity.native_id] = user
        user.log.info("xmpp_user_client_opened", clients=len(self.users))
        return user

    def _enter(self, user: C, room: str) -> None:
        key = self.fold(room)
        if key not in user.rooms:
            user.rooms.add(key)
            self._join(user, room)

    def _leave(self, user: C, room: str, why: str, message: str) -> None:
        if user.rooms <= {self.fold(room)}:
            self._close(user, why, message)
        else:
            user.rooms.discard(self.fold(room))
            self._part(user, room)

    def _close(self, user: C, why: str, message: str = "") -> None:
        """Quit `user`'s client, for reason `why`, with the QUIT message `message` (their own
        words, never logged) or else `why`: the one log event of its end, naming the rooms
        it was in."""
        if self.users.get(user.identity.native_id) is user:
            del self.users[user.identity.native_id]
        self._full = False
        user.log.info("xmpp_user_client_closed", reason=why, rooms=sorted(user.rooms), clients=len(self.users))
        done = self._quit(user, message or why)
        if done is not None:
            self._spawn(done)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def run(self) -> None:
        """Quit idle clients and those that cannot connect."""
        while True:
            await asyncio.sleep(min(SWEEP, self.idle / 2))
            now = time.monotonic()
            for user in list(self.users.values()):
                user.down_since = None if self._connected(user) else (user.down_since or now)
                if now - user.last_active >= self.idle:
                    self._close(user, "idle")
                elif user.down_since is not None and now - user.down_since >= GIVE_UP:
                    self.hold(user, "could not connect")
            self.held = {k: until for k, until in self.held.items() if until > now}

    async def close(self) -> None:
        for user in list(self.users.values()):
            self._close(user, "shutdown", "muc-bridge shutting down")
        await asyncio.gather(*self._closing, return_exceptions=True)
