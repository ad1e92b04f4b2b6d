"""The identd (RFC 1413): one listener for every IRC connection the bridge makes for a user.

An IRC server that asks who owns a connection gets that connection's own ident (`x` and a
hash of the user's identity, never the JID), so its bans and limits can tell users apart:
portal users' connections and plumbed links' (`xmpp_users: connect`) alike. Each `IrcUsers`
adds its connections' lookup to the one `Identd` of the bridge (`add`), so no two listeners
ever want one port. A query is one line, `<port here> , <port there>`, answered with
`USERID : UNIX : <ident>` when a connection has exactly those ports, else `ERROR : NO-USER`.
One line per connection, read within `READ_TIMEOUT`, at most `MAX_QUERY` bytes, `MAX_CLIENTS`
at once; then the connection is closed (RFC 1413 allows a server to close after one answer).
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

#: (port here, port there) -> the ident of the connection with those ports, if any.
Lookup = Callable[[int, int], str | None]


def answer(query: bytes, lookup: Lookup) -> bytes:
    """The reply to one query line (RFC 1413 section 6)."""
    here, comma, there = query.decode("ascii", "replace").strip().partition(",")
    try:
        ports = int(here), int(there)
    except ValueError:
        return b"0 , 0 : ERROR : INVALID-PORT\r\n"
    if not comma or not all(0 < port < 65536 for port in ports):
        return b"0 , 0 : ERROR : INVALID-PORT\r\n"
    ident = lookup(*ports)
    head = f"{ports[0]} , {ports[1]} : "
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

    async def run(self) -> None:
        """Listen for as long as the bridge runs (`bridge.core.listen`)."""
        await listen("identd", self.host, self.port, self._client, limit=MAX_QUERY, most=MAX_CLIENTS)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            async with asyncio.timeout(READ_TIMEOUT):
                line = await reader.readuntil(b"\n")
                writer.write(answer(line, self.ident))
                await writer.drain()
