"""Each network's connection over time: up or down since when, and how often it came back.

Sampled once a second from `Adapter.connected()`, so a drop and return within the same
second goes uncounted; nothing on the relay path pays for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from bridge.core.adapter import Adapter

TICK = 1.0


@dataclass
class LinkState:
    up: bool = False
    since: float = 0.0  # Unix time of the last change (or of the start)
    reconnects: int = 0  # times it came back up after having been up


class Watch:
    def __init__(self, adapters: Mapping[str, Adapter]) -> None:
        self.adapters = adapters
        now = time.time()
        self.states: dict[str, LinkState] = {name: LinkState(since=now) for name in adapters}
        self._seen_up: set[str] = set()

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for name, adapter in self.adapters.items():
            state = self.states.setdefault(name, LinkState(since=now))
            up = adapter.connected()
            if up == state.up:
                continue
            state.up, state.since = up, now
            if up and name in self._seen_up:
                state.reconnects += 1
            if up:
                self._seen_up.add(name)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(TICK)
