"""An identd (RFC 1413) for portal users' connections, on an opt-in port.

An IRC server that asks who owns a connection gets that connection's own ident (`x` and a
hash of the user's JID, never the JID), so its bans and limits can tell portal users apart.
A query is one line, `<port here> , <port there>`, answered with `USERID : UNIX : <ident>`
when one of the connections has exactly those ports, else `ERROR : NO-USER`. One line per
connection, read within `READ_TIMEOUT`, at most `MAX_QUERY` bytes; then the connection is
closed (RFC 1413 allows a server to close after one answer).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

READ_TIMEOUT = 10.0
MAX_QUERY = 64  # two port numbers, a comma and spaces fit many times over

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


async def serve(host: str, port: int, lookup: Lookup) -> asyncio.Server:
    """Start answering on `host`:`port`."""
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                line = await reader.readuntil(b"\n")
            writer.write(answer(line, lookup))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    server = await asyncio.start_server(client, host, port, limit=MAX_QUERY)
    log.info("identd_listening", network="portal:irc", port=port)
    return server
