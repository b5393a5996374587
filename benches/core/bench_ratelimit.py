"""Rate-limit checks from Python: gateway._core.RateLimiter against a pure-Python dict of token buckets, same run.

.venv/bin/pytest benches/core/bench_ratelimit.py --benchmark-enable --benchmark-columns=min,median,max,ops

Each benchmark runs CHECKS checks in a Python loop; divide by CHECKS for one check (the loop itself is in both).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import Limit, RateLimiter
from gateway.limits import LimitKeeper

CHECKS = 10_000
KEYS = [f"key:{i}" for i in range(1000)]
SINGLE = f"single-limit check x{CHECKS} (divide by {CHECKS} for one)"
GROUP = f"key rpm + team tpm + model tpm, all or none, x{CHECKS}"
THREADS = f"4 threads x {CHECKS // 4} checks on one key (GIL held by the caller)"
KEEPER = f"LimitKeeper.take + settle (key rpm + tpm + slot), x{CHECKS}"


class PythonBuckets:
    """The reference: token buckets in a dict, refilled from the monotonic clock, one limit per call."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str, rate: float, burst: float, cost: float = 1.0) -> float:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / rate


class PythonAtomicBuckets(PythonBuckets):
    """The reference for groups: all or none under one lock (what a Python gateway would need across threads)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def check_many(self, limits: list[tuple[str, float, float, float]]) -> float:
        with self._lock:
            now = time.monotonic()
            wait = 0.0
            fills = []
            for key, rate, burst, cost in limits:
                tokens, last = self._buckets.get(key, (burst, now))
                tokens = min(burst, tokens + (now - last) * rate)
                fills.append(tokens)
                if tokens < cost:
                    wait = max(wait, (cost - tokens) / rate)
            if wait == 0.0:
                for (key, _, _, cost), tokens in zip(limits, fills, strict=True):
                    self._buckets[key] = (tokens - cost, now)
            return wait


def _run_numbers(check: Callable[..., float]) -> None:
    for i in range(CHECKS):
        check(KEYS[i % 1000], 1e6, 1e6)


def test_single_python_dict(benchmark: BenchmarkFixture) -> None:
    benchmark.group = SINGLE
    benchmark(_run_numbers, PythonBuckets().check)


def test_single_rust_take(benchmark: BenchmarkFixture) -> None:
    """take(key, limit): a Limit built once."""
    benchmark.group = SINGLE
    limiter, limit = RateLimiter(), Limit(1e6, 1e6)
    take = limiter.take

    def run() -> None:
        for i in range(CHECKS):
            take(KEYS[i % 1000], limit)

    benchmark(run)


def test_single_python_loop_only(benchmark: BenchmarkFixture) -> None:
    """The loop and key indexing alone: subtract from every row above for the cost of one check."""
    benchmark.group = SINGLE

    def nothing(key: str, rate: float, burst: float) -> float:
        return 0.0

    benchmark(_run_numbers, nothing)


def test_group_python_dict_not_atomic(benchmark: BenchmarkFixture) -> None:
    """The reference checks three limits one after another, without atomicity (a denial may leave takes behind)."""
    benchmark.group = GROUP
    buckets = PythonBuckets()

    def run() -> None:
        for i in range(CHECKS):
            buckets.check(KEYS[i % 1000], 1e6, 1e6)
            buckets.check("team:search", 1e9, 1e9, 350.0)
            buckets.check("model:gpt-4o", 1e9, 1e9, 350.0)

    benchmark(run)


def test_group_python_dict_atomic(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP
    buckets = PythonAtomicBuckets()

    def run() -> None:
        for i in range(CHECKS):
            buckets.check_many(
                [(KEYS[i % 1000], 1e6, 1e6, 1.0), ("team:search", 1e9, 1e9, 350.0), ("model:gpt-4o", 1e9, 1e9, 350.0)]
            )

    benchmark(run)


def test_group_rust_take_all(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP
    limiter, rpm, tpm = RateLimiter(), Limit(1e6, 1e6), Limit(1e9, 1e9)

    def run() -> None:
        for i in range(CHECKS):
            limiter.take_all([(KEYS[i % 1000], rpm, 1.0), ("team:search", tpm, 350.0), ("model:gpt-4o", tpm, 350.0)])

    benchmark(run)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """Limits far above what the benchmark takes, so every call is admitted."""

    rpm: int = 600_000_000
    tpm: int = 60_000_000_000
    max_concurrent: int = 1_000_000


class PythonKeeper:
    """The reference for the gateway's use: rpm and tpm buckets and a count in flight, all or none under one lock."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, subject: str, limits: KeyLimits, tokens: int) -> float:
        with self._lock:
            now = time.monotonic()
            wait = 0.0
            cost = float(min(tokens, limits.tpm))
            rates = [(f"{subject}:rpm", limits.rpm, 1.0), (f"{subject}:tpm", limits.tpm, cost)]
            left = []
            for key, per_minute, n in rates:
                tokens_now, last = self._buckets.get(key, (per_minute, now))
                tokens_now = min(per_minute, tokens_now + (now - last) * per_minute / 60)
                left.append((key, tokens_now - n))
                if tokens_now < n:
                    wait = max(wait, (n - tokens_now) * 60 / per_minute)
            slot = f"{subject}:inflight"
            if self._in_flight.get(slot, 0) >= limits.max_concurrent:
                wait = max(wait, 0.05)
            if wait == 0.0:
                for key, remaining in left:
                    self._buckets[key] = (remaining, now)
                self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
            return wait

    def settle(self, subject: str, limits: KeyLimits, reserved_tokens: int, used_tokens: int) -> None:
        with self._lock:
            self._in_flight[f"{subject}:inflight"] -= 1
            key = f"{subject}:tpm"
            tokens_now, last = self._buckets[key]
            self._buckets[key] = (min(limits.tpm, tokens_now - (used_tokens - reserved_tokens)), last)


def test_keeper_python_reference(benchmark: BenchmarkFixture) -> None:
    benchmark.group = KEEPER
    keeper, limits = PythonKeeper(), KeyLimits()

    def run() -> None:
        for i in range(CHECKS):
            subject = KEYS[i % 1000]
            keeper.take(subject, limits, 350)
            keeper.settle(subject, limits, 350, 300)

    benchmark(run)


def test_keeper_rust(benchmark: BenchmarkFixture) -> None:
    """gateway.limits.LimitKeeper: one take_all for the three checks, two corrections to settle."""
    benchmark.group = KEEPER
    keeper, limits = LimitKeeper(), KeyLimits()

    def run() -> None:
        for i in range(CHECKS):
            subject = KEYS[i % 1000]
            keeper.take(subject, limits, 350)
            keeper.settle(subject, limits, 350, 300)

    benchmark(run)


def _threaded(check: Callable[[], object]) -> None:
    def work() -> None:
        for _ in range(CHECKS // 4):
            check()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_threads_python_dict_locked(benchmark: BenchmarkFixture) -> None:
    benchmark.group = THREADS
    buckets, lock = PythonBuckets(), threading.Lock()

    def check() -> None:
        with lock:
            buckets.check("hot", 1e9, 1e9)

    benchmark(_threaded, check)


def test_threads_rust_take(benchmark: BenchmarkFixture) -> None:
    benchmark.group = THREADS
    limiter, limit = RateLimiter(), Limit(1e9, 1e9)
    benchmark(_threaded, lambda: limiter.take("hot", limit))
