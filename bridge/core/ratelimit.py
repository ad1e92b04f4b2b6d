"""Token bucket flood control, network-neutral.

`burst` lines may go out at once; after that one token comes back every
`interval` seconds. `interval == 0` turns the bucket off. The clock and the
sleep function are injectable so tests can run on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self,
        burst: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.burst = max(1, burst)
        self.interval = interval
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def _refill(self) -> None:
        now = self._clock()
        if self.enabled:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is there now)."""
        if not self.enabled:
            return 0.0
        self._refill()
        missing = 1 - self._tokens
        return missing * self.interval if missing > 1e-9 else 0.0

    def spend(self, n: int = 1) -> None:
        """Take `n` tokens without waiting; the balance may go below zero
        (lines that had to go out at once are still paid for)."""
        if self.enabled:
            self._refill()
            self._tokens -= n

    async def take(self) -> None:
        """Wait until a token is available, then take it."""
        while (wait := self.delay()) > 0:
            await self._sleep(wait)
        self.spend()

    def reset(self) -> None:
        """A full bucket (a new connection starts with a clean slate)."""
        self._tokens = float(self.burst)
        self._stamp = self._clock()
