"""gateway.limits.LimitKeeper: one request, its tokens and a slot taken all or none, given back, settled on usage."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway._core import Limit, RateLimiter
from gateway.limits import LimitKeeper, Refusal


@dataclass(frozen=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


def keeper() -> tuple[LimitKeeper, RateLimiter]:
    limiter = RateLimiter.with_test_clock()
    return LimitKeeper(limiter), limiter


def test_take_is_all_or_none() -> None:
    limits = Limits(rpm=2, tpm=1000)
    keep, limiter = keeper()
    assert keep.take("k", limits, 600) is None
    refusal = keep.take("k", limits, 600)
    assert refusal is not None
    assert not refusal.concurrency
    assert refusal.wait_s == pytest.approx(12.0), "200 tokens short at 1000/min"
    assert limiter.available("k:rpm", Limit.per_minute(2)) == 1, "the refused take left the request rate alone"
    assert keep.take("k", limits, 400) is None


def test_a_take_of_more_tokens_than_the_limit_takes_the_whole_limit() -> None:
    keep, limiter = keeper()
    assert keep.take("k", Limits(tpm=100), 5000) is None
    assert limiter.available("k:tpm", Limit.per_minute(100)) == 0


def test_a_full_slot_refuses_as_concurrency_and_takes_nothing() -> None:
    limits = Limits(rpm=10, max_concurrent=1)
    keep, limiter = keeper()
    assert keep.take("k", limits, 0) is None
    assert keep.take("k", limits, 0) == Refusal(0.05, concurrency=True)
    assert limiter.available("k:rpm", Limit.per_minute(10)) == 9
    keep.settle("k", limits, 0, 0)
    assert keep.take("k", limits, 0) is None


def test_rates_refusing_with_the_slot_full_is_a_rate_refusal() -> None:
    limits = Limits(rpm=1, max_concurrent=1)
    keep, _ = keeper()
    assert keep.take("k", limits, 0) is None
    refusal = keep.take("k", limits, 0)
    assert refusal is not None
    assert not refusal.concurrency
    assert refusal.wait_s == pytest.approx(60.0), "the rate's wait, longer than the slot's"


def test_give_back_undoes_a_take() -> None:
    limits = Limits(rpm=1, tpm=100, max_concurrent=1)
    keep, limiter = keeper()
    assert keep.take("k", limits, 80) is None
    keep.give_back("k", limits, 80)
    assert limiter.available("k:tpm", Limit.per_minute(100)) == 100
    assert keep.take("k", limits, 100) is None


def test_settle_frees_the_slot_and_corrects_tokens_to_usage() -> None:
    limits = Limits(tpm=100, max_concurrent=1)
    keep, limiter = keeper()
    tpm = Limit.per_minute(100)
    assert keep.take("k", limits, 90) is None
    keep.settle("k", limits, reserved_tokens=90, used_tokens=30)
    assert limiter.available("k:tpm", tpm) == 70
    assert keep.take("k", limits, 10) is None
    keep.settle("k", limits, reserved_tokens=10, used_tokens=50)
    assert limiter.available("k:tpm", tpm) == 20, "usage above the reservation is taken too"
    # A reservation above the limit took only the limit; settling corrects from what was taken.
    limiter.advance(60.0)
    assert keep.take("k", limits, 500) is None
    keep.settle("k", limits, reserved_tokens=500, used_tokens=40)
    assert limiter.available("k:tpm", tpm) == 60


def test_no_limits_admit_everything() -> None:
    keep, limiter = keeper()
    assert keep.take("k", Limits(), 10**9) is None
    keep.settle("k", Limits(), 10**9, 1)
    keep.give_back("k", Limits(), 10**9)
    assert len(limiter) == 0


def test_take_one_is_a_plain_rate() -> None:
    keep, _ = keeper()
    assert [keep.take_one("auth-failures:10.0.0.1", per_minute=6, burst=2) for _ in range(2)] == [0.0, 0.0]
    assert keep.take_one("auth-failures:10.0.0.1", per_minute=6, burst=2) == pytest.approx(10.0)
    assert keep.take_one("auth-failures:10.0.0.2", per_minute=6, burst=2) == 0.0
