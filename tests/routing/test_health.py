"""Circuit breakers and latency tracking, on a test clock."""

from __future__ import annotations

from gateway.config.routes import CircuitBreakerConfig
from gateway.routing.health import BreakerState, CircuitBreaker, TargetHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_then_probes_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(consecutive_failures=3, open_s=10), clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(), "one probe is let through"
    assert not breaker.allow(), "only one probe at a time"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()


def test_failed_probe_reopens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(consecutive_failures=1, open_s=5), clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.9
    assert not breaker.allow()


def test_error_rate_over_window_opens() -> None:
    breaker = CircuitBreaker(
        CircuitBreakerConfig(consecutive_failures=100, error_rate=0.5, window=10, min_calls=10), Clock()
    )
    for i in range(9):
        (breaker.record_failure if i % 2 else breaker.record_success)()
    assert breaker.state is BreakerState.CLOSED, "below min_calls the rate does not apply"
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_successes_reset_the_consecutive_count() -> None:
    breaker = CircuitBreaker(CircuitBreakerConfig(consecutive_failures=3, min_calls=1000), Clock())
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


def test_latency_ewma_follows_a_slowdown_and_cooldown_expires() -> None:
    clock = Clock()
    health = TargetHealth(CircuitBreaker(CircuitBreakerConfig(), clock), clock)
    for _ in range(10):
        health.observe(0.01, 0.05)
    assert abs((health.ewma_total_s or 0) - 0.05) < 1e-9
    for _ in range(5):
        health.observe(0.5, 1.0)
    assert (health.ewma_total_s or 0) > 0.8
    assert health.ttft_percentile(50) == 0.01
    health.cool_down(2.0)
    assert health.cooling_for() == 2.0
    clock.now += 2.5
    assert health.cooling_for() == 0.0
