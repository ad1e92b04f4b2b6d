"""Lines waiting for one IRC connection, paced by a token bucket.

Two queues share the bucket. Control lines (CAP, AUTHENTICATE, NICK, JOIN,
PING, PONG) go first and whenever connected: a PONG stuck behind a thousand
relayed lines would get us disconnected. Relayed lines wait in a bounded queue
and only go out once the client is registered and has sent its JOINs; when
that queue is full, the oldest lines are dropped and counted
(`irc_queue_overflow`). Lines stay queued across a reconnect.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Iterable

import structlog

from bridge.core.ratelimit import TokenBucket

log = structlog.get_logger(__name__)

#: Control lines are few and our own; a bound still keeps a PING flood from growing memory.
CONTROL_LIMIT = 64


class Outbox:
    def __init__(self, bucket: TokenBucket, size: int, network: str) -> None:
        self.bucket = bucket
        self.size = max(1, size)
        self.network = network
        self.dropped = 0
        self._control: collections.deque[str] = collections.deque()
        self._text: collections.deque[tuple[str, asyncio.Future | None]] = collections.deque()
        self._open = False
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._text)

    def control(self, line: str) -> None:
        if len(self._control) >= CONTROL_LIMIT:
            self._control.popleft()
            log.warning("irc_control_overflow", network=self.network, limit=CONTROL_LIMIT)
        self._control.append(line)
        self._wake.set()

    def put(self, lines: Iterable[str]) -> asyncio.Future:
        """Queue relayed lines; the future is done when the last one is
        written or dropped, or the connection is lost (`release`)."""
        done = asyncio.get_running_loop().create_future()
        lines = list(lines)
        if not lines:
            done.set_result(None)
            return done
        dropped = 0
        for i, line in enumerate(lines):
            if len(self._text) >= self.size:
                _, waiter = self._text.popleft()
                _resolve(waiter)
                dropped += 1
            self._text.append((line, done if i == len(lines) - 1 else None))
        if dropped:
            self.dropped += dropped
            log.warning("irc_queue_overflow", network=self.network, dropped=dropped,
                        dropped_total=self.dropped, queued=len(self._text), policy="drop-oldest")
        self._wake.set()
        return done

    def open(self) -> None:
        """Registered and joined: relayed lines may go out."""
        self._open = True
        self._wake.set()

    def connection_lost(self) -> None:
        """Forget control lines (they belong to the old connection), hold relayed
        lines for the next one, and stop anyone waiting for them."""
        self._open = False
        self._control.clear()
        for _, waiter in self._text:
            _resolve(waiter)

    async def run(self, write: Callable[[str], None]) -> None:
        """Write lines as the bucket allows, until cancelled."""
        while True:
            if not (self._control or (self._open and self._text)):
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.bucket.take()
            if self._control:
                line, waiter = self._control.popleft(), None
            elif self._open and self._text:
                line, waiter = self._text.popleft()
            else:
                continue
            try:
                write(line)
            except Exception as exc:  # e.g. an overlong line: ours to fix, not fatal
                log.error("irc_line_refused", network=self.network, error=str(exc))
            _resolve(waiter)


def _resolve(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
