"""gateway._core.RateLimiter: rates with bursts, atomic multi-limit checks, adjustment, concurrency, eviction."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._core import RateLimiter


def test_burst_then_steady_rate() -> None:
    limiter = RateLimiter.with_test_clock()
    assert [limiter.check("key", 2.0, 3.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.check("key", 2.0, 3.0) == pytest.approx(0.5)
    limiter.advance(0.5)
    assert limiter.check("key", 2.0, 3.0) == 0.0
    assert limiter.check("key", 2.0, 3.0) > 0.0


def test_costs_are_units_such_as_tokens() -> None:
    limiter = RateLimiter.with_test_clock()
    tokens_per_minute = (1000 / 60, 1000.0)
    assert limiter.check("team:a:tpm", *tokens_per_minute, cost=800) == 0.0
    wait = limiter.check("team:a:tpm", *tokens_per_minute, cost=400)
    assert wait == pytest.approx(200 / (1000 / 60))


def test_check_many_is_all_or_none() -> None:
    limiter = RateLimiter.with_test_clock()
    assert limiter.check("model:x", 1.0, 1.0) == 0.0
    wait = limiter.check_many([("key:k", 10.0, 10.0, 1.0), ("model:x", 1.0, 1.0, 1.0)])
    assert wait == pytest.approx(1.0)
    assert [limiter.check("key:k", 10.0, 10.0) for _ in range(10)] == [0.0] * 10, "the denial took nothing"
    limiter.advance(1.0)
    assert limiter.check_many([("key:k", 10.0, 10.0, 1.0), ("model:x", 1.0, 1.0, 1.0)]) == 0.0


def test_adjust_corrects_a_take() -> None:
    limiter = RateLimiter.with_test_clock()
    assert limiter.check("tpm", 10.0, 100.0, cost=100) == 0.0
    limiter.adjust("tpm", 10.0, 100.0, -60)
    assert limiter.check("tpm", 10.0, 100.0, cost=60) == 0.0
    assert limiter.check("tpm", 10.0, 100.0, cost=1) > 0.0


def test_concurrency_slots() -> None:
    limiter = RateLimiter()
    assert limiter.acquire("streams", 2)
    assert limiter.acquire("streams", 2)
    assert not limiter.acquire("streams", 2)
    limiter.release("streams")
    assert limiter.acquire("streams", 2)


def test_idle_keys_are_evicted_and_limited_ones_kept() -> None:
    limiter = RateLimiter.with_test_clock(max_keys=64)
    assert limiter.check("hot", 1.0, 1.0) == 0.0
    for i in range(5000):
        limiter.check(f"k{i}", 1000.0, 1.0, cost=0)
    assert len(limiter) < 200
    assert limiter.check("hot", 1.0, 1.0) > 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("k", 0.0, 1.0), "rate_per_s must be a positive number"),
        (("k", 1.0, 0.0), "burst must be at least 1"),
        (("k", 1.0, 1.0, -2.0), "cost must be zero or positive"),
        (("k", float("nan"), 1.0), "rate_per_s"),
    ],
)
def test_bad_limits_raise_value_error(args: tuple[str, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter().check(*args)


def test_advance_needs_a_test_clock() -> None:
    with pytest.raises(ValueError, match="test clock"):
        RateLimiter().advance(1.0)


def test_threads_hammering_one_key_never_exceed_the_limit() -> None:
    limiter = RateLimiter()
    admitted = [0] * 8
    barrier = threading.Barrier(8)

    def hammer(slot: int) -> None:
        barrier.wait()
        for _ in range(20_000):
            if limiter.check("shared", 1.0, 50.0) == 0.0:
                admitted[slot] += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    # The burst of 50, plus one refill per second that the 160,000 attempts took.
    assert 50 <= sum(admitted) <= 50 + elapsed * 1.0 + 1


@given(steps=st.lists(st.tuples(st.floats(0, 0.5), st.floats(0, 3)), max_size=100))
def test_never_admits_more_than_rate_times_time_plus_burst(steps: list[tuple[float, float]]) -> None:
    limiter = RateLimiter.with_test_clock()
    admitted = elapsed = 0.0
    for dt, cost in steps:
        limiter.advance(dt)
        elapsed += dt
        if limiter.check("k", 4.0, 5.0, cost=cost) == 0.0:
            admitted += cost
        assert admitted <= 4.0 * elapsed + 5.0 + 1e-6
