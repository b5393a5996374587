"""gateway._core.RateLimiter: rates with bursts, atomic groups mixing rates and concurrency, correction, eviction."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._core import Limit, RateLimiter


def test_burst_then_steady_rate() -> None:
    limiter, limit = RateLimiter.with_test_clock(), Limit(2.0, 3.0)
    assert [limiter.take("key", limit) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("key", limit) == pytest.approx(0.5)
    limiter.advance(0.5)
    assert limiter.take("key", limit) == 0.0
    assert limiter.take("key", limit) > 0.0


def test_costs_are_units_such_as_tokens() -> None:
    limiter = RateLimiter.with_test_clock()
    tokens_per_minute = Limit.per_minute(1000)
    assert limiter.take("team:a:tpm", tokens_per_minute, 800) == 0.0
    wait = limiter.take("team:a:tpm", tokens_per_minute, 400)
    assert wait == pytest.approx(200 / (1000 / 60))


def test_take_all_is_all_or_none() -> None:
    limiter = RateLimiter.with_test_clock()
    per_key, per_model = Limit(10.0, 10.0), Limit(1.0, 1.0)
    assert limiter.take("model:x", per_model) == 0.0
    refused = limiter.take_all([("key:k", per_key, 1.0), ("model:x", per_model, 1.0)])
    assert refused == pytest.approx((1.0, 1))
    assert [limiter.take("key:k", per_key) for _ in range(10)] == [0.0] * 10, "the denial took nothing"
    limiter.advance(1.0)
    assert limiter.take_all([("key:k", per_key, 0.0), ("model:x", per_model, 1.0)]) is None


def test_concurrency_slots() -> None:
    limiter, slots = RateLimiter(), Limit.concurrent(2)
    assert limiter.take("streams", slots) == 0.0
    assert limiter.take("streams", slots) == 0.0
    assert limiter.take("streams", slots) == pytest.approx(0.05), "the limit's retry_after hint"
    limiter.correct("streams", slots, -1)
    assert limiter.take("streams", slots) == 0.0


def test_idle_keys_are_evicted_and_limited_ones_kept() -> None:
    limiter = RateLimiter.with_test_clock(max_keys=64)
    assert limiter.take("hot", Limit(1.0, 1.0)) == 0.0
    fast = Limit(1000.0, 1.0)
    for i in range(5000):
        limiter.take(f"k{i}", fast, 0)
    assert len(limiter) < 200
    assert limiter.take("hot", Limit(1.0, 1.0)) > 0.0


def test_advance_needs_a_test_clock() -> None:
    with pytest.raises(ValueError, match="test clock"):
        RateLimiter().advance(1.0)


def test_threads_hammering_one_key_never_exceed_the_limit() -> None:
    limiter, limit = RateLimiter(), Limit(1.0, 50.0)
    admitted = [0] * 8
    barrier = threading.Barrier(8)

    def hammer(slot: int) -> None:
        barrier.wait()
        for _ in range(20_000):
            if limiter.take("shared", limit) == 0.0:
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
    limiter, limit = RateLimiter.with_test_clock(), Limit(4.0, 5.0)
    admitted = elapsed = 0.0
    for dt, cost in steps:
        limiter.advance(dt)
        elapsed += dt
        if limiter.take("k", limit, cost) == 0.0:
            admitted += cost
        assert admitted <= 4.0 * elapsed + 5.0 + 1e-6


# --- Limit objects, atomic groups mixing rates and concurrency, eviction ------------------------------------------


def test_limit_constructors() -> None:
    rpm = Limit.per_minute(60)
    assert (rpm.kind, rpm.rate_per_s, rpm.burst) == ("rate", 1.0, 60.0)
    assert Limit.per_minute(5, burst=20).burst == 20.0
    assert Limit(2.0, 3.0).rate_per_s == 2.0
    slots = Limit.concurrent(4)
    assert (slots.kind, slots.rate_per_s, slots.burst) == ("concurrency", None, 4.0)
    assert "burst=60" in repr(rpm)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Limit(0.0, 1.0), "rate_per_s must be a positive number"),
        (lambda: Limit(float("nan"), 1.0), "rate_per_s must be a positive number"),
        (lambda: Limit(1.0, 0.0), "burst must be at least 1"),
        (lambda: Limit(-1.0, 1.0), "rate_per_s must be a positive number"),
        (lambda: Limit(float("inf"), 1.0), "rate_per_s must be a positive number"),
        (lambda: Limit.per_minute(60, burst=0.5), "burst must be at least 1"),
        (lambda: Limit(1e-12, 1e12), "too long a window"),
        (lambda: Limit.concurrent(0), "max_concurrent must be at least 1"),
        (lambda: Limit.concurrent(1, retry_after=0.0), "retry_after"),
        (lambda: RateLimiter(max_keys=0), "max_keys"),
        (lambda: RateLimiter(idle_ttl=-1.0), "idle_ttl"),
    ],
)
def test_bad_limits_and_limiters_raise_value_error(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_take_refuses_bad_amounts_without_creating_keys() -> None:
    limiter = RateLimiter.with_test_clock()
    with pytest.raises(ValueError, match="cost must be zero or positive"):
        limiter.take("k", Limit(1.0, 1.0), -1)
    with pytest.raises(ValueError, match="cost must be zero or positive"):
        limiter.take_all([("k", Limit(1.0, 1.0), float("nan"))])
    with pytest.raises(ValueError, match="delta must be a finite number"):
        limiter.correct("k", Limit(1.0, 1.0), float("inf"))
    with pytest.raises(TypeError):
        limiter.take_all([("k", 1.0, 1.0)])  # type: ignore[list-item]
    assert len(limiter) == 0


def test_more_than_the_burst_is_never_admitted() -> None:
    limiter = RateLimiter.with_test_clock()
    assert limiter.take("tpm", Limit.per_minute(1000), 1001) == float("inf")
    assert limiter.take("tpm", Limit.per_minute(1000), 1000) == 0.0, "the refused take consumed nothing"
    assert limiter.take("c", Limit.concurrent(2), 3) == float("inf")


def test_take_all_mixes_rates_and_concurrency_all_or_none() -> None:
    limiter = RateLimiter.with_test_clock()
    rpm, tpm, slots = Limit.per_minute(60), Limit.per_minute(10_000), Limit.concurrent(1, retry_after=0.25)
    group = [
        ("key:k:rpm", rpm, 1.0),
        ("team:t:tpm", tpm, 3000.0),
        ("model:m:tpm", tpm, 3000.0),
        ("key:k:inflight", slots, 1.0),
    ]
    assert limiter.take_all(group) is None
    # The slot is held: the whole group is refused with the slot's hint and index, and no rate limit lost anything.
    assert limiter.take_all(group) == pytest.approx((0.25, 3))
    assert limiter.available("key:k:rpm", rpm) == 59
    assert limiter.available("team:t:tpm", tpm) == 7000
    assert limiter.available("model:m:tpm", tpm) == 7000
    limiter.correct("key:k:inflight", slots, -1)
    assert limiter.take_all(group) is None
    assert limiter.available("team:t:tpm", tpm) == 4000
    # Checks on one key add up: the team's second 3000 is the first check to refuse, 2000 tokens short at 10000/min
    # = 12 s.
    limiter.correct("key:k:inflight", slots, -1)
    assert limiter.take_all([*group[:3], ("team:t:tpm", tpm, 3000.0)]) == pytest.approx((12.0, 3))
    assert limiter.available("key:k:rpm", rpm) == 58
    assert limiter.take_all([]) is None


def test_correct_takes_more_gives_back_and_releases() -> None:
    limiter = RateLimiter.with_test_clock()
    tpm = Limit.per_minute(600)  # 10 tokens per second
    assert limiter.take("t", tpm, 500) == 0.0
    limiter.correct("t", tpm, 200)  # the provider billed 700
    assert limiter.take("t", tpm, 1) == pytest.approx(10.1)
    limiter.correct("t", tpm, -300)
    assert limiter.available("t", tpm) == 200
    limiter.correct("t", tpm, -10_000)
    assert limiter.available("t", tpm) == 600, "a refund never fills a bucket past its burst"
    slots = Limit.concurrent(1)
    assert limiter.take("c", slots) == 0.0
    assert limiter.take("c", slots) > 0.0
    limiter.correct("c", slots, -1)
    assert limiter.take("c", slots) == 0.0


def test_idle_ttl_eviction_changes_no_answer() -> None:
    limiter = RateLimiter.with_test_clock(idle_ttl=60.0)
    rpm = Limit.per_minute(1)
    for i in range(100):
        assert limiter.take(f"k{i}", rpm) == 0.0
    limiter.correct("k0", rpm, 1)  # k0 owes a second minute
    assert limiter.evict_idle() == 0, "buckets in debt or recently used are kept"
    limiter.advance(59.0)
    assert limiter.evict_idle() == 0
    limiter.advance(1.0)
    assert limiter.evict_idle() == 99, "the refilled buckets go, k0 (still in debt) stays"
    assert len(limiter) == 1
    assert limiter.take("k0", rpm) == pytest.approx(60.0)
    assert limiter.take("k1", rpm) == 0.0, "an evicted key starts fresh, as it would have been anyway"


def test_memory_stays_bounded_even_when_every_key_is_in_debt() -> None:
    limiter = RateLimiter.with_test_clock(max_keys=256)
    rpm = Limit.per_minute(1)
    for i in range(20_000):
        limiter.take(f"attacker-{i}", rpm)
    assert len(limiter) <= 256 + 16


def test_threads_hammering_one_group_never_exceed_any_limit() -> None:
    limiter = RateLimiter()
    rpm, tpm, slots = Limit(1e-3, 40.0), Limit(1e-3, 1000.0), Limit.concurrent(3)
    admitted = [0] * 8
    in_flight_max = [0]
    in_flight = [0]
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def hammer(slot: int) -> None:
        barrier.wait()
        for _ in range(5_000):
            if limiter.take_all([("k:rpm", rpm, 1.0), ("t:tpm", tpm, 30.0), ("k:slots", slots, 1.0)]) is None:
                admitted[slot] += 1
                with lock:
                    in_flight[0] += 1
                    in_flight_max[0] = max(in_flight_max[0], in_flight[0])
                with lock:
                    in_flight[0] -= 1
                limiter.correct("k:slots", slots, -1)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # tpm admits 1000 // 30 = 33 groups before rpm's 40; the rates are too slow to refill during the test.
    assert sum(admitted) == 33
    assert in_flight_max[0] <= 3
    assert limiter.available("k:rpm", rpm) == 40 - 33
