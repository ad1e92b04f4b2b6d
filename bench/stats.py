"""What the bench measures: arrivals of tagged messages, and a process's CPU and memory."""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass, field

#: Every bench message carries `BM<tag>:<seq>:<send perf_counter_ns>` somewhere in its text.
_TOKEN = re.compile(r"BM(\w+):(\d+):(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def token(tag: str, seq: int, now_ns: int) -> str:
    return f"BM{tag}:{seq}:{now_ns} the quick brown fox jumps over the lazy dog"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


@dataclass
class Arrivals:
    """The messages of one tag seen by one observer: first arrival per sequence number,
    duplicates counted, and those that arrived after a later-numbered one (out of order)."""

    tag: str
    expected: int
    latencies_ns: dict[int, int] = field(default_factory=dict)
    duplicates: int = 0
    out_of_order: int = 0
    highest_seq: int = -1
    first_send_ns: int | None = None
    last_arrival_ns: int | None = None
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, seq: int, sent_ns: int, now_ns: int) -> None:
        if seq in self.latencies_ns:
            self.duplicates += 1
            return
        if seq < self.highest_seq:
            self.out_of_order += 1
        else:
            self.highest_seq = seq
        self.latencies_ns[seq] = now_ns - sent_ns
        self.last_arrival_ns = now_ns
        if len(self.latencies_ns) >= self.expected:
            self.complete.set()

    @property
    def received(self) -> int:
        return len(self.latencies_ns)

    async def wait(self, timeout: float, idle: float = 5.0) -> bool:
        """Until all arrived, `timeout` passed, or nothing new came for `idle` seconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while not self.complete.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.received == seen:
                return False
            seen = self.received
            try:
                await asyncio.wait_for(self.complete.wait(), min(idle, left))
            except TimeoutError:
                pass
        return True

    def summary(self) -> dict:
        lat = sorted(v / 1e6 for v in self.latencies_ns.values())
        elapsed = ((self.last_arrival_ns - self.first_send_ns) / 1e9
                   if self.last_arrival_ns and self.first_send_ns else None)
        return {
            "sent": self.expected,
            "received": self.received,
            "lost": self.expected - self.received,
            "duplicates": self.duplicates,
            "elapsed_s": _round(elapsed, 4),
            "msg_per_s": _round(self.received / elapsed, 1) if elapsed else None,
            "p50_ms": _round(percentile(lat, 50), 3),
            "p95_ms": _round(percentile(lat, 95), 3),
            "p99_ms": _round(percentile(lat, 99), 3),
        }


class Board:
    """Routes message text seen by one client to the `Arrivals` waiting for its tag."""

    def __init__(self) -> None:
        self.tracking: dict[str, Arrivals] = {}

    def track(self, tag: str, expected: int) -> Arrivals:
        arrivals = self.tracking[tag] = Arrivals(tag, expected)
        return arrivals

    def untrack(self, tag: str) -> None:
        self.tracking.pop(tag, None)

    def feed(self, text: str, now_ns: int) -> None:
        match = _TOKEN.search(text)
        if match is None:
            return
        arrivals = self.tracking.get(match[1])
        if arrivals is not None:
            arrivals.add(int(match[2]), int(match[3]), now_ns)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float
    rss_kib: int


def sample(pid: int) -> ProcSample:
    """CPU seconds (user + system, /proc/PID/stat) and resident memory (/proc/PID/status)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime: fields 14 and 15
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
                break
    return ProcSample(cpu, rss)


async def quiet(pids: list[int], still: float = 0.3, timeout: float = 15.0) -> None:
    """Wait until none of `pids` used CPU for `still` seconds (bounded by `timeout`):
    the previous scenario's backlog, in the gateway or in a server, is worked off."""
    deadline = time.monotonic() + timeout
    before = [sample(pid).cpu_s for pid in pids]
    while time.monotonic() < deadline:
        await asyncio.sleep(still)
        now = [sample(pid).cpu_s for pid in pids]
        if all(b - a < 0.02 for a, b in zip(before, now)):
            return
        before = now
