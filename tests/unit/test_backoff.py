"""Reconnect delays: growing, jittered, capped, and sane after days of outage."""

from bridge.core.backoff import Backoff


def test_delays_grow_with_jitter_up_to_the_cap():
    backoff = Backoff(initial=1.0, maximum=60.0)
    delays = [backoff.next_delay() for _ in range(12)]
    assert 0.5 <= delays[0] <= 1.0
    assert 4.0 <= delays[3] <= 8.0
    assert all(30.0 <= d <= 60.0 for d in delays[6:])
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_thousands_of_attempts_do_not_overflow():
    backoff = Backoff(initial=1.0, maximum=300.0)
    backoff.attempts = 5000
    assert 150.0 <= backoff.next_delay() <= 300.0
