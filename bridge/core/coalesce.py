"""Socket writes gathered per event-loop turn.

A burst relayed in one turn of the loop costs one system call, not one per
line or stanza; past `limit` bytes it goes out at once, so the peer starts
on a long burst while the rest of it is still being built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Bytes gathered before a write without waiting for the end of the turn.
FLUSH_SIZE = 16384


class Coalescer:
    """Gathers data for `write`, which gets it in order, joined."""

    def __init__(self, write: Callable[[bytes], None], limit: int = FLUSH_SIZE) -> None:
        self._write = write
        self.limit = limit
        self._parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        if not self._parts:
            asyncio.get_running_loop().call_soon(self.flush)
        self._parts.append(data)
        self.size += len(data)
        if self.size >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            data = b"".join(self._parts)
            self.clear()
            self._write(data)

    def clear(self) -> None:
        """Forget what was gathered (the connection it was for is gone)."""
        self._parts.clear()
        self.size = 0
