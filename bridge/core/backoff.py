"""Exponential backoff with full jitter, for every reconnect loop."""

from __future__ import annotations

import asyncio
import random


class Backoff:
    """Delays grow `initial * factor**n` up to `maximum`, each drawn at random
    from [delay/2, delay] so that many clients do not reconnect in step."""

    def __init__(self, initial: float = 1.0, maximum: float = 300.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1  # the exponent is capped: days of outage must not overflow
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempts = 0

    async def wait(self) -> float:
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay
