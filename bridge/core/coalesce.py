"""Socket writes gathered per event-loop turn.

Data added to a quiet connection (nothing written for `IDLE`) goes out at once: a lone
message, the paced case, waits for nothing. What follows it in the same turn, and
everything of a burst (writes turn after turn), is gathered and written when the turn
ends, so a burst relayed in one turn costs one system call, not one per line or stanza
(and the peer one read). Past `limit` bytes it goes out at once, so the peer starts on a
long burst while the rest of it is still being built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Bytes gathered before a write without waiting for the end of the turn.
FLUSH_SIZE = 16384
#: Seconds without a write after which a connection is quiet (a burst's turns follow each
#: other within a fraction of this; paced messages come tens of milliseconds apart).
IDLE = 0.001


class Coalescer:
    """Gathers data for `write`, which gets it in order, joined."""

    def __init__(self, write: Callable[[bytes], None], limit: int = FLUSH_SIZE) -> None:
        self._write = write
        self.limit = limit
        self._parts: list[bytes] = []
        self.size = 0
        self._turn = False  # a write at the end of this turn is due
        self._written = float("-inf")  # loop time of the last write

    def add(self, data: bytes) -> None:
        if not self._turn:
            self._turn = True
            loop = asyncio.get_running_loop()
            now = loop.time()
            try:
                if now - self._written >= IDLE:
                    self._written = now
                    self._write(data)  # first of all: a lone message waits for nothing
                    return
            finally:
                loop.call_soon(self._turn_over)
        self._parts.append(data)
        self.size += len(data)
        if self.size >= self.limit:
            self.flush()

    def _turn_over(self) -> None:
        self._turn = False
        self.flush()

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self.clear()
            self._written = asyncio.get_running_loop().time()
            self._write(data)

    def clear(self) -> None:
        """Forget what was gathered (the connection it was for is gone)."""
        self._parts.clear()
        self.size = 0
