"""The identd (RFC 1413): one listener for every IRC connection the bridge makes for a user.

An IRC server that asks who owns a connection gets that connection's own ident (`x` and a
hash of the user's identity, never the JID), so its bans and limits can tell users apart:
portal users' connections and plumbed links' (`xmpp_users: connect`) alike. Each `IrcUsers`
adds its connections' lookup to the one `Identd` of the bridge (`add`), so no two listeners
ever want one port. A query is one line, `<port here> , <port there>`, answered with
`USERID : UNIX : <ident>` when a connection has exactly those ports, else `ERROR : NO-USER`.
One line per connection, read within `READ_TIMEOUT`, at most `MAX_QUERY` bytes, `MAX_CLIENTS`
at once; then the connection is closed (RFC 1413 allows a server to close after one answer).

A server asks as soon as it accepts a connection, which may be before the bridge's own side
of the connect has returned: a connection not known yet is asked for again every
`RETRY` until `KNOWN_WITHIN`, and only then is the answer NO-USER.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from bridge.core.listen import listen

log = structlog.get_logger(__name__)

READ_TIMEOUT = 10.0
MAX_QUERY = 64  # two port numbers, a comma and spaces fit many times over
MAX_CLIENTS = 32  # queries answered at once; more are closed unanswered
KNOWN_WITHIN = 3.0
RETRY = 0.05

#: (port here, port there) -> the ident of the connection with those ports, if any.
Lookup = Callable[[int, int], str | None]


def ports(query: bytes) -> tuple[int, int] | None:
    """The two ports of a query line (RFC 1413 section 6); None if it holds none."""
    here, comma, there = query.decode("ascii", "replace").strip().partition(",")
    try:
        found = int(here), int(there)
    except ValueError:
        return None
    return found if comma and all(0 < port < 65536 for port in found) else None


def answer(asked: tuple[int, int] | None, ident: str | None) -> bytes:
    """The reply to a query for ports `asked` (None: no ports in it) owned by `ident`."""
    if asked is None:
        return b"0 , 0 : ERROR : INVALID-PORT\r\n"
    head = f"{asked[0]} , {asked[1]} : "
    return (head + (f"USERID : UNIX : {ident}" if ident else "ERROR : NO-USER") + "\r\n").encode()


class Identd:
    """The bridge's identd on `host` ("": every address) and `port`, answering for the
    connections of every lookup added."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host or None  # None: asyncio listens on every address, IPv4 and IPv6
        self.port = port
        self.lookups: list[Lookup] = []

    def add(self, lookup: Lookup) -> None:
        self.lookups.append(lookup)

    def discard(self, lookup: Lookup) -> None:
        with contextlib.suppress(ValueError):
            self.lookups.remove(lookup)

    def ident(self, here: int, there: int) -> str | None:
        """The ident of the connection from our port `here` to the server's port `there`."""
        return next((ident for lookup in self.lookups if (ident := lookup(here, there))), None)

    async def _known(self, asked: tuple[int, int]) -> str | None:
        """The ident of ports `asked`, waiting up to `KNOWN_WITHIN` for the connection."""
        loop = asyncio.get_running_loop()
        given_up = loop.time() + KNOWN_WITHIN
        while (ident := self.ident(*asked)) is None and loop.time() < given_up:
            await asyncio.sleep(RETRY)
        return ident

    async def run(self) -> None:
        """Listen for as long as the bridge runs (`bridge.core.listen`)."""
        await listen("identd", self.host, self.port, self._client, limit=MAX_QUERY, most=MAX_CLIENTS)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            async with asyncio.timeout(READ_TIMEOUT):
                asked = ports(await reader.readuntil(b"\n"))
                writer.write(answer(asked, await self._known(asked) if asked else None))
                await writer.drain()
