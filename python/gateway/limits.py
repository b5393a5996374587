"""Requests per minute, tokens per minute and calls in flight for a named subject (a provider deployment's quota, a
key's own limits), kept by the Rust core's rate limiter: the only importer of gateway._core's RateLimiter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway._core import RateLimiter

_PER_MINUTE = 1 / 60


class Limits(Protocol):
    @property
    def rpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...
    @property
    def max_concurrent(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    wait_s: float
    """Seconds until the rates would admit the call; for a full concurrency limit, how soon to look again."""
    concurrency: bool
    """True when the calls in flight, not the rates, refused."""


_SLOT_RECHECK_S = 0.05
"""A full concurrency limit frees a slot when some call ends; waiting callers look again this often."""


class LimitKeeper:
    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter or RateLimiter()

    def take(self, subject: str, limits: Limits, tokens: int) -> Refusal | None:
        """Takes one request, `tokens` and a slot, all or none. None when taken (pair with `settle`, or `give_back`
        if the call does not go out), else why not."""
        checks = _rate_checks(subject, limits, tokens)
        if checks:
            wait = self._limiter.check_many(checks)
            if wait > 0.0:
                return Refusal(wait, concurrency=False)
        if limits.max_concurrent is not None and not self._limiter.acquire(
            f"{subject}:inflight", limits.max_concurrent
        ):
            for name, rate, burst, cost in checks:
                self._limiter.adjust(name, rate, burst, -cost)  # this call does not go out now
            return Refusal(_SLOT_RECHECK_S, concurrency=True)
        return None

    def take_one(self, subject: str, per_minute: float, burst: float) -> float:
        """One event against a plain rate (e.g. failed authentications per address): 0.0 when admitted, else the
        seconds until it would be."""
        return self._limiter.check(subject, per_minute * _PER_MINUTE, burst)

    def give_back(self, subject: str, limits: Limits, tokens: int) -> None:
        """Undoes a `take` whose call never went out."""
        for name, rate, burst, cost in _rate_checks(subject, limits, tokens):
            self._limiter.adjust(name, rate, burst, -cost)
        if limits.max_concurrent is not None:
            self._limiter.release(f"{subject}:inflight")

    def settle(self, subject: str, limits: Limits, reserved_tokens: int, used_tokens: int) -> None:
        """Ends a call that went out: frees its slot and corrects its token take to what was really used."""
        if limits.max_concurrent is not None:
            self._limiter.release(f"{subject}:inflight")
        if limits.tpm is not None and used_tokens != reserved_tokens:
            delta = float(used_tokens - min(reserved_tokens, limits.tpm))
            self._limiter.adjust(f"{subject}:tpm", limits.tpm * _PER_MINUTE, float(limits.tpm), delta)


def _rate_checks(subject: str, limits: Limits, tokens: int) -> list[tuple[str, float, float, float]]:
    checks: list[tuple[str, float, float, float]] = []
    if limits.rpm is not None:
        checks.append((f"{subject}:rpm", limits.rpm * _PER_MINUTE, float(limits.rpm), 1.0))
    if limits.tpm is not None:
        checks.append((f"{subject}:tpm", limits.tpm * _PER_MINUTE, float(limits.tpm), float(min(tokens, limits.tpm))))
    return checks
