"""The fuzz suite in CI: every target for a couple of seconds (the same seeded inputs each
run, as many as fit), and every saved crashing input replayed. The full run is
`python -m tests.fuzz run --count full` (docs/fuzzing.md)."""

from __future__ import annotations

import pytest

from tests.fuzz.engine import fuzz, regression_cases, replay
from tests.fuzz.logs import quiet
from tests.fuzz.targets import TARGETS

#: Seconds per target: the nine of them and the replays in under 30 s on two cores.
SMOKE_SECONDS = 2.2


@pytest.fixture(autouse=True)
def _quiet():
    with quiet():
        yield


@pytest.mark.parametrize("name", list(TARGETS))
def test_target_survives_its_smoke_run(name):
    report = fuzz(TARGETS[name], count=1_000_000, seconds=SMOKE_SECONDS, seed=0, save=False, log=lambda _: None)
    assert report.inputs > 0
    assert report.crashes == {}, {sig: len(inputs) for sig, inputs in report.crashes.items()}


@pytest.mark.parametrize("path", regression_cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_saved_crash_stays_fixed(path):
    _, error = replay(TARGETS[path.parent.name], path.read_bytes())
    assert error is None, f"{type(error).__name__}: {error}"


def test_the_memory_sample_is_no_hang():
    """An input sampled for its memory runs again under tracemalloc, which slows it many
    times over; only its own run counts against the bound (irc-split's full run had
    "hangs" of 250-350 ms that replay in ~30 ms)."""
    import time
    import tracemalloc

    from tests.fuzz.engine import Target

    def check(data: bytes) -> None:
        if tracemalloc.is_tracing():
            held = bytearray(4096)  # something to trace: on 3.13 the loop below allocates nothing
            end = time.process_time() + 0.05
            while time.process_time() < end:
                pass
            del held

    target = Target("slow-when-traced", "", lambda rng: b"x", check, bound=0.02)
    report = fuzz(target, count=3, seconds=None, seed=0, save=False, log=lambda _: None)
    assert report.inputs == 3 and report.hangs == [] and report.traced_peak > 0  # it was sampled
