"""WHOIS through the relay client, for XMPP contact cards: who a nick is (real name,
account, away message), asked at most once a minute per nick.

Replies are matched by nick (RPL_WHOISUSER 311, RPL_WHOISACCOUNT 330, RPL_AWAY 301,
ERR_NOSUCHNICK 401, each ended by RPL_ENDOFWHOIS 318; Modern IRC, "WHOIS message"). At
most `MAX_PENDING` are asked at once and `CACHE_SIZE` answers kept; an unanswered one
gives up after `TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from irc.client import Event

from bridge.irc.client import RelayClient
from bridge.irc.formatting import irc_to_text

TIMEOUT = 5.0
CACHE_TTL = 60.0
CACHE_SIZE = 256
MAX_PENDING = 8


@dataclass(frozen=True, slots=True)
class WhoisReply:
    online: bool = True
    realname: str | None = None
    account: str | None = None
    away: str | None = None


class Whois:
    def __init__(self, client: RelayClient, fold: Callable[[str], str]) -> None:
        self.client = client
        self.fold = fold
        self._cache: collections.OrderedDict[str, tuple[float, WhoisReply]] = collections.OrderedDict()
        self._pending: dict[str, tuple[list[WhoisReply], asyncio.Future[WhoisReply]]] = {}
        for name, field in (("whoisuser", "realname"), ("whoisaccount", "account"), ("away", "away")):
            client.on(name, lambda event, field=field: self._learn(event, field))
        client.on("nosuchnick", lambda event: self._learn(event, "online"))
        client.on("endofwhois", self._end)

    async def ask(self, nick: str) -> WhoisReply | None:
        """What the network says about `nick` now; None if it cannot be asked (not
        connected, too many questions open) or did not answer in time."""
        key = self.fold(nick)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < CACHE_TTL:
            return cached[1]
        if key not in self._pending:
            if not self.client.registered or len(self._pending) >= MAX_PENDING or not _plain(nick):
                return None
            self._pending[key] = ([WhoisReply()], asyncio.get_running_loop().create_future())
            self.client.control(f"WHOIS {nick}")
        future = self._pending[key][1]
        try:
            async with asyncio.timeout(TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            if self._pending.get(key, (None, None))[1] is future:
                del self._pending[key]
            return None

    def _learn(self, event: Event, field: str) -> None:
        args = event.arguments
        pending = self._pending.get(self.fold(args[0])) if len(args) >= 2 else None
        if pending is None:  # not ours (an AWAY from away-notify has no arguments)
            return
        value = False if field == "online" else irc_to_text(args[-1] if field != "account" else args[1])
        pending[0][0] = replace(pending[0][0], **{field: value})

    def _end(self, event: Event) -> None:
        key = self.fold(event.arguments[0]) if event.arguments else ""
        reply, future = self._pending.pop(key, ([None], None))
        if future is None:
            return
        self._cache[key] = (time.monotonic(), reply[0])
        self._cache.move_to_end(key)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        if not future.done():
            future.set_result(reply[0])


def _plain(nick: str) -> bool:
    """A nick that can go into a WHOIS line as it is (no space, comma or line break)."""
    return bool(nick) and not any(c in nick for c in " ,\r\n\0") and not nick.startswith(":")
