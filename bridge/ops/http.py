"""The metrics and health pages, served from the event loop (the collectors read the
bridge's state where it lives, never from another thread).

`GET /metrics`: Prometheus text exposition. `GET /health`: 200 `ready` when every
configured network is connected and every linked room joined, else 503 and what is not.
HTTP/1.0 style: one request per connection, then close. Bounded: a request must arrive
within `READ_TIMEOUT` and fit in `MAX_REQUEST` bytes, and at most `MAX_CLIENTS` are served
at once (more are closed at once).
"""

from __future__ import annotations

import asyncio
import http.client

import structlog

from bridge.core.listen import listen
from bridge.ops.control import Control
from bridge.ops.metrics import CONTENT_TYPE, Metrics

log = structlog.get_logger(__name__)

READ_TIMEOUT = 5.0
MAX_REQUEST = 8192
MAX_CLIENTS = 8
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           503: "Service Unavailable"}


class StatusServer:
    def __init__(self, listen: str, metrics: Metrics, control: Control) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.metrics = metrics
        self.control = control

    async def run(self) -> None:
        """Listen for as long as the bridge runs (`bridge.core.listen`)."""
        await listen("metrics", self.host, self.port, self._serve, limit=MAX_REQUEST, most=MAX_CLIENTS)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, kind, body = await self._answer(reader)
            head = (f"HTTP/1.0 {status} {REASONS[status]}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + body)
            async with asyncio.timeout(READ_TIMEOUT):
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a client that went away or never said anything sensible

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        async with asyncio.timeout(READ_TIMEOUT):
            request = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = request.decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if method != "GET":
            return 405, "text/plain", b"only GET\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE, self.metrics.page()
        if path == "/health":
            problems = self.control.unready()
            text = "ready\n" if not problems else "not ready: " + "; ".join(problems) + "\n"
            return (503 if problems else 200), "text/plain", text.encode()
        return 404, "text/plain", b"/metrics or /health\n"


def probe(listen: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET /health from a bridge listening on `listen` (a wildcard address is asked on
    loopback): the status (0: no answer) and the text."""
    host, _, port = listen.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "::1"}.get(host, host.strip("[]"))
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            conn.request("GET", "/health")
            answer = conn.getresponse()
            return answer.status, answer.read(MAX_REQUEST).decode("utf-8", "replace")
        finally:
            conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"no answer from {listen}: {getattr(exc, 'strerror', None) or exc!r}"
