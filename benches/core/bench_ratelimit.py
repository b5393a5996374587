"""Rate-limit checks from Python: gateway._core.RateLimiter against a pure-Python dict of token buckets, same run.

pytest benches/core/bench_ratelimit.py --benchmark-enable
"""

from __future__ import annotations

import time

from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import RateLimiter

CHECKS = 10_000
KEYS = [f"key:{i}" for i in range(1000)]


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


def _run_single(check: object) -> None:
    for i in range(CHECKS):
        check(KEYS[i % 1000], 1e6, 1e6)  # type: ignore[operator]


def test_single_limit_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = f"single-limit check x{CHECKS} (divide by {CHECKS} for one)"
    limiter = RateLimiter()
    benchmark(_run_single, limiter.check)


def test_single_limit_python_dict(benchmark: BenchmarkFixture) -> None:
    benchmark.group = f"single-limit check x{CHECKS} (divide by {CHECKS} for one)"
    benchmark(_run_single, PythonBuckets().check)


def test_three_limits_atomically_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = f"key rpm + team tpm + model tpm, all or none, x{CHECKS}"
    limiter = RateLimiter()

    def run() -> None:
        for i in range(CHECKS):
            limiter.check_many(
                [(KEYS[i % 1000], 1e6, 1e6, 1.0), ("team:search", 1e9, 1e9, 350.0), ("model:gpt-4o", 1e9, 1e9, 350.0)]
            )

    benchmark(run)


def test_three_limits_python_dict(benchmark: BenchmarkFixture) -> None:
    """The reference checks three limits one after another, without atomicity (a denial may leave takes behind)."""
    benchmark.group = f"key rpm + team tpm + model tpm, all or none, x{CHECKS}"
    buckets = PythonBuckets()

    def run() -> None:
        for i in range(CHECKS):
            buckets.check(KEYS[i % 1000], 1e6, 1e6)
            buckets.check("team:search", 1e9, 1e9, 350.0)
            buckets.check("model:gpt-4o", 1e9, 1e9, 350.0)

    benchmark(run)
