"""A small TCP service the bridge offers (the identd, the metrics pages): listened on for as
long as the bridge runs, one exchange per connection, a bounded number at once.

An address that cannot be had (in use; port 113 without the right to bind it) is logged and
tried again with backoff while the bridge relays. Past `most` connections at once, new ones
are closed unanswered. Each connection is closed once its handler returns, whatever happened.
Stopping does not wait for the connections still open (uvloop's `Server.wait_closed`, like
Python 3.12's, would wait for every one of them): their handlers' own timeouts end them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from bridge.core.backoff import Backoff

log = structlog.get_logger(__name__)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
#: Longest wait for a closed connection's last bytes to go.
CLOSE_TIMEOUT = 5.0


async def listen(name: str, host: str | None, port: int, handle: Handler, *, limit: int, most: int) -> None:
    """Serve `handle` on `host` (None: every address) and `port` until cancelled; `limit`:
    the stream reader's buffer; logs as `<name>_listening` / `<name>_listen_failed`."""
    busy = 0

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy
        if busy >= most:
            writer.close()
            return
        busy += 1
        try:
            await handle(reader, writer)
        finally:
            busy -= 1
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await writer.wait_closed()

    backoff = Backoff(initial=5.0, maximum=300.0)
    while True:
        try:
            server = await asyncio.start_server(client, host, port, limit=limit)
        except OSError as exc:
            log.error(f"{name}_listen_failed", host=host or "*", port=port, error=exc.strerror or str(exc))
            await backoff.wait()
            continue
        log.info(f"{name}_listening", host=host or "*", port=port)
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            server.close()  # not waiting for open connections: their handlers end them
