"""Work done in a steady stream: keys served first come, first served, at a token bucket's pace.

Used for MUC joins: after the component stream comes up, every room is joined at the pace of
`component.joins` instead of all in one write, and the rooms' self-pings take their turn too.
A key is in the queue at most once (asking again keeps its place), so the queue is bounded by
the number of keys there are (rooms). `serve(key)` says what the work cost, in tokens: a room
rejoined with its puppets costs one presence each.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from bridge.core.ratelimit import TokenBucket

K = TypeVar("K", bound=Hashable)


class PacedQueue(Generic[K]):
    def __init__(self, serve: Callable[[K], int], bucket: TokenBucket) -> None:
        self.serve = serve
        self.bucket = bucket
        self._keys: collections.OrderedDict[K, None] = collections.OrderedDict()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: K) -> bool:
        return key in self._keys

    def add(self, key: K) -> None:
        self._keys[key] = None
        self._ready.set()

    def first(self, key: K) -> None:
        """Serve `key` next, if it waits."""
        if key in self._keys:
            self._keys.move_to_end(key, last=False)

    def clear(self) -> None:
        self._keys.clear()

    async def run(self) -> None:
        """Serve keys as the bucket allows, until cancelled."""
        while True:
            if not self._keys:
                self._ready.clear()
                await self._ready.wait()
                continue
            await self.bucket.take()
            if not self._keys:  # cleared while we waited
                continue
            key, _ = self._keys.popitem(last=False)
            cost = self.serve(key)
            if cost > 1:
                self.bucket.spend(cost - 1)
