"""The fuzz runner: a target's generator makes inputs from a seeded `random.Random`,
its `check` runs one input through the decoder and raises on anything the decoder
does not document (its own error types are caught inside `check`). An input slower
than the target's bound is a hang; one that never ends is stopped at ten times it.

Each crashing or hanging input is kept under `regressions/<target>/`, named by what
went wrong, where, and a hash of the input; `test_fuzz_smoke.py` replays them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import resource
import signal
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REGRESSIONS = Path(__file__).parent / "regressions"
#: Every this many inputs, one is run again under tracemalloc for its peak memory.
MEMORY_SAMPLE = 509
#: Address space a fuzzing process may use: past it an input fails with MemoryError.
MEMORY_LIMIT = 4 << 30
#: Crashing inputs kept per kind of crash in one run.
KEEP_PER_CRASH = 3
#: Seconds between progress lines in a long run.
PROGRESS_EVERY = 300.0


class Violation(AssertionError):
    """The decoder returned, but what it returned breaks what it promises."""


class Hang(Exception):
    """An input ran past the target's hard time limit."""


@dataclass(frozen=True)
class Target:
    name: str
    doc: str  # one line: what goes in, what must hold
    generate: Callable[[random.Random], bytes]
    check: Callable[[bytes], None]
    bound: float = 0.25  # seconds: an input slower than this is a hang
    full: int = 1_000_000  # inputs in the full run
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


@dataclass
class Slowest:
    seconds: float = 0.0
    size: int = 0
    data: bytes = b""


@dataclass
class Report:
    target: str
    inputs: int = 0
    seconds: float = 0.0
    slowest: Slowest = field(default_factory=Slowest)
    biggest: int = 0  # bytes of the largest input
    traced_peak: int = 0  # bytes, the most one sampled input allocated at once
    rss_growth: int = 0  # KiB the process's peak RSS grew by during the run
    crashes: dict[str, list[bytes]] = field(default_factory=dict)  # signature -> inputs
    hangs: list[tuple[float, bytes]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)

    @property
    def crash_count(self) -> int:
        return sum(len(v) for v in self.crashes.values())

    def line(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        return (f"{self.target:<16} {self.inputs:>9,} inputs  {self.crash_count:>3} crashes  "
                f"{len(self.hangs):>3} hangs  slowest {_ms(self.slowest.seconds)} "
                f"({self.slowest.size:,} B)  peak {self.traced_peak / 1024:,.0f} KiB traced, "
                f"RSS +{self.rss_growth / 1024:,.1f} MiB  {rate:,.0f}/s")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def signature(exc: BaseException) -> str:
    """What went wrong and where: the exception type and its innermost frame in the
    project's code (the innermost frame at all when none is)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/bridge/" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}@{where}"


@contextlib.contextmanager
def _hard_limit(seconds: float) -> Iterator[None]:
    """Stop an input that has used `seconds` of CPU (SIGPROF, so that pytest-timeout's
    SIGALRM stays its own)."""

    def stop(signum, frame):
        raise Hang(f"over {seconds:.1f} s of CPU")

    previous = signal.signal(signal.SIGPROF, stop)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def run_one(target: Target, data: bytes, limit: float | None = None) -> tuple[float, BaseException | None]:
    """Run one input (inside the target's context); the CPU time it took and what it raised."""
    if limit:
        signal.setitimer(signal.ITIMER_PROF, limit)
    started = time.process_time()  # CPU time: a busy machine's scheduling is no hang
    try:
        target.check(data)
        error = None
    except Exception as exc:  # everything the target let through is a finding
        error = exc
    finally:
        elapsed = time.process_time() - started
        if limit:
            signal.setitimer(signal.ITIMER_PROF, 0)
    return elapsed, error


def replay(target: Target, data: bytes) -> tuple[float, BaseException | None]:
    """Run one saved input as the fuzzer did (context, time limit): its time and error."""
    hard = max(10 * target.bound, 2.0)
    with target.context(), _hard_limit(hard):
        return run_one(target, data, hard)


def fuzz(target: Target, count: int, seconds: float | None, seed: int,
         save: bool = True, log: Callable[[str], None] = print) -> Report:
    """Run `target` on `count` generated inputs or for `seconds`, whichever ends first."""
    rng = random.Random(f"{seed}:{target.name}")
    report = Report(target.name)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    soft, hard_as = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_LIMIT:  # a runaway input: MemoryError, not the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard_as))
    hard = max(10 * target.bound, 2.0)
    with target.context(), _hard_limit(hard):
        started = time.perf_counter()  # the context (keys, a loop) is not the target's time
        deadline = started + seconds if seconds else None
        progress = started + PROGRESS_EVERY
        for n in range(count):
            if n and n % 16 == 0:
                now = time.perf_counter()
                if deadline and now > deadline:
                    break
                if now > progress:
                    progress = now + PROGRESS_EVERY
                    log(f"  {target.name}: {n:,} inputs so far, {report.crash_count} crashes, "
                        f"{len(report.hangs)} hangs, {n / (now - started):,.0f}/s")
            data = target.generate(rng)
            elapsed, error = run_one(target, data, hard)
            if n % MEMORY_SAMPLE == 0 and error is None:  # its memory, in a run of its own:
                tracemalloc.start()  # tracing slows an input 6-8x, which is no hang
                run_one(target, data, hard)
                report.traced_peak = max(report.traced_peak, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            report.inputs += 1
            report.biggest = max(report.biggest, len(data))
            if elapsed > report.slowest.seconds:
                report.slowest = Slowest(elapsed, len(data), data)
            if error is None and elapsed > target.bound:  # slow, but it ended
                report.hangs.append((elapsed, data))
                log(f"  {target.name}: hang, {_ms(elapsed)} on {len(data):,} bytes")
                if save and len(report.hangs) <= KEEP_PER_CRASH:
                    report.saved.append(_save(target.name, "hang", data))
            elif error is not None:  # a Hang (stopped at the hard limit) is one too
                sig = signature(error)
                kept = report.crashes.setdefault(sig, [])
                if not kept:
                    log(f"  {target.name}: {sig}: {_short(error)}")
                kept.append(data)
                if save and len(kept) <= KEEP_PER_CRASH:
                    report.saved.append(_save(target.name, sig, data))
        report.seconds = time.perf_counter() - started
        if report.slowest.data:  # the slowest input's memory, measured
            tracemalloc.start()
            run_one(target, report.slowest.data, hard)
            report.traced_peak = max(report.traced_peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard_as))
    report.rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return report


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text[:200]


def _save(target: str, sig: str, data: bytes) -> Path:
    folder = REGRESSIONS / target
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in sig)
    path = folder / f"{name}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    return path


def regression_cases(target: str | None = None) -> list[Path]:
    """Saved inputs, of one target or all (the folder names the target)."""
    if not REGRESSIONS.is_dir():
        return []
    folders = [REGRESSIONS / target] if target else sorted(p for p in REGRESSIONS.iterdir() if p.is_dir())
    return sorted(path for folder in folders if folder.is_dir() for path in folder.glob("*.bin"))
