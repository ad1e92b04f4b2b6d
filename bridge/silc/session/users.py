"""Who is behind a Client ID (WHOIS, GETKEY, a bounded cache), and the
queue that holds events in arrival order until the users they name are
resolved. Part of `Session` (machine.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import replace

from bridge.silc import events as ev
from bridge.silc.buffer import DecodeError
from bridge.silc.channel import Channel
from bridge.silc.session.errors import CommandError, NotConnected

MAX_USERS = 10_000
#: Client IDs asked about in one WHOIS (a command has at most 255 arguments), and the most
#: members of a channel asked about when it is joined (the others: once they speak).
WHOIS_BATCH = 200
MEMBERS_ASKED = 1000


class Users:
    """User resolution and the event queue; needs the Session's `_users`, `_queue` and `whois`."""

    async def dispatch(self) -> None:
        """Resolve and deliver queued events in order; run as a task."""
        while True:
            ids, build, with_key = await self._queue.get()
            users = [await self.resolve(i, with_key) for i in ids]
            try:
                event = build(*users)
                if event is not None:
                    self._on_event(event)
            except Exception:
                self.log.exception("silc_event_handler_failed")

    def _remember(self, user: ev.User) -> None:
        self._users[user.client_id] = user
        self._users.move_to_end(user.client_id)
        while len(self._users) > MAX_USERS:
            self._users.popitem(last=False)

    async def resolve(self, client_id: bytes, with_key: bool = False) -> ev.User | None:
        """The user behind a Client ID, from the cache or by WHOIS; `with_key`
        also fetches the public key itself if it is not known yet."""
        user = self._users.get(client_id)
        if user is not None:  # a key does not change within a session
            self._users.move_to_end(client_id)
        else:
            if client_id not in self._resolving:
                self._resolving[client_id] = asyncio.ensure_future(self._lookup(client_id))
            user = await asyncio.shield(self._resolving[client_id])
        if with_key and user is not None and user.public_key is None:
            user = await self._with_key(user)
        return user

    async def _with_key(self, user: ev.User) -> ev.User:
        try:
            key = await self.public_key(user.client_id)
        except (CommandError, NotConnected, asyncio.TimeoutError, DecodeError) as exc:
            self.log.info("silc_user_key_unavailable", nick=user.nick, reason=str(exc) or type(exc).__name__)
            return user
        if key is None or (user.fingerprint is not None and key.fingerprint != user.fingerprint):
            self.log.warning("silc_user_key_mismatch", nick=user.nick, fingerprint=user.fingerprint)
            return user
        user = replace(user, public_key=key)
        if user.client_id in self._users:
            self._remember(user)
        return user

    async def _lookup(self, client_id: bytes) -> ev.User | None:
        try:
            user = await self.whois(client_id)
        except (CommandError, NotConnected, asyncio.TimeoutError, DecodeError) as exc:
            self.log.info(
                "silc_user_unresolved", client_id=client_id.hex(), reason=str(exc) or type(exc).__name__
            )
            user = None
        finally:
            self._resolving.pop(client_id, None)
        if user is not None:
            self._remember(user)
        return user

    async def resolve_members(self, channel: Channel) -> None:
        """Learn who the members of a channel just joined are, in one WHOIS per WHOIS_BATCH
        unknown ones, so that they can be found by nick before they say anything (the JOIN
        reply names them by Client ID only)."""
        if not self.config.hears_channels:
            return
        unknown = [i for i in channel.members if i not in self._users and not self._is_own(i)]
        for start in range(0, min(len(unknown), MEMBERS_ASKED), WHOIS_BATCH):
            try:
                users = await self.whois_many(unknown[start:start + WHOIS_BATCH])
            except (CommandError, NotConnected, asyncio.TimeoutError, DecodeError) as exc:
                self.log.info("silc_members_unresolved", channel=channel.name,
                              reason=str(exc) or type(exc).__name__)
                return
            for user in users:
                if user.client_id not in self._users:
                    self._remember(user)

    def user_called(self, nick: str, among: Iterable[bytes] | None = None,
                    skip: Callable[[ev.User], bool] | None = None) -> ev.User | None:
        """The user called `nick` (case-insensitively) among the Client IDs `among` (among all
        users resolved so far when None), if resolved already; never the bridge's own client,
        nor one `skip` says no to."""
        folded = nick.casefold()
        ids = reversed(self._users) if among is None else among  # the most recently seen first
        for client_id in ids:
            user = self._users.get(client_id)
            if user is not None and user.nick.casefold() == folded and not self._is_own(client_id) \
                    and not (skip and skip(user)):
                return user
        return None

    @property
    def backlog(self) -> int:
        """Events waiting for `dispatch`."""
        return self._queue.qsize()

    def _queue_event(
        self, ids: tuple[bytes, ...], build: Callable[..., ev.SessionEvent | None], with_key: bool = False,
        private: bool = False,
    ) -> None:
        """`build(*users)` once the users `ids` are resolved; of a client that does not hear
        its channels, only `private` messages are (the rest need nobody resolved)."""
        if ids and not private and not self.config.hears_channels:
            return
        try:
            self._queue.put_nowait((ids, build, with_key))
        except asyncio.QueueFull:
            self.log.warning("silc_event_queue_full")

    def _is_own(self, client_id: bytes) -> bool:
        return self.client_id is not None and client_id == self.client_id.data
