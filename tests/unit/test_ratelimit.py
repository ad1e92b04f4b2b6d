"""Token bucket on a fake clock: a burst, then one line per interval."""

from bridge.core.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(burst=4, interval=2.0):
    clock = FakeClock()
    return TokenBucket(burst, interval, clock=clock, sleep=clock.sleep), clock


async def send_times(b, clock, n):
    times = []
    for _ in range(n):
        await b.take()
        times.append(clock.now - 1000.0)
    return times


async def test_burst_then_one_per_interval():
    b, clock = bucket(4, 2.0)
    assert await send_times(b, clock, 7) == [0, 0, 0, 0, 2, 4, 6]


async def test_idle_time_refills_up_to_the_burst_only():
    b, clock = bucket(4, 2.0)
    await send_times(b, clock, 4)
    clock.now += 1000  # a long quiet time earns no more than `burst`
    assert await send_times(b, clock, 6) == [1000, 1000, 1000, 1000, 1002, 1004]


async def test_partial_refill_waits_only_the_rest():
    b, clock = bucket(1, 2.0)
    await b.take()
    clock.now += 1.5
    assert b.delay() == 0.5
    await b.take()
    assert clock.slept == [0.5]


async def test_interval_zero_is_off():
    b, clock = bucket(1, 0)
    assert await send_times(b, clock, 100) == [0] * 100
    assert clock.slept == []


async def test_spent_tokens_are_paid_back_before_the_next_line():
    b, clock = bucket(4, 2.0)
    b.spend(6)  # six lines that had to go out at once
    await b.take()
    assert clock.now - 1000 == 6.0  # 2 owed + 1 needed, 2 s each


async def test_reset_fills_the_bucket():
    b, clock = bucket(2, 2.0)
    b.spend(5)
    b.reset()
    assert await send_times(b, clock, 3) == [0, 0, 2]
