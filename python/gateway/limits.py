"""Requests per minute, tokens per minute and calls in flight for a named subject (a provider deployment's quota, a
key's own limits), kept by the Rust core's rate limiter: the only importer of gateway._core's RateLimiter."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Protocol

from gateway._core import Limit, RateLimiter


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
    """Seconds until the rates (and a slot) would admit the call; for a full concurrency limit alone, how soon to look
    again."""
    concurrency: bool
    """True when the calls in flight, not the rates, refused."""


_SLOT_RECHECK_S = 0.05
"""A full concurrency limit frees a slot when some call ends; waiting callers look again this often."""


@dataclass(frozen=True, slots=True)
class _CoreLimits:
    """One Limits' values as the core's Limit objects, built once per distinct (rpm, tpm, max_concurrent)."""

    rpm: Limit | None
    tpm: Limit | None
    slots: Limit | None


class LimitKeeper:
    def __init__(self, limiter: RateLimiter | None = None) -> None:
        # Not `limiter or ...`: a RateLimiter has a length, so an empty one is falsy.
        self._limiter = limiter if limiter is not None else RateLimiter()
        # One entry per distinct (rpm, tpm, max_concurrent) in the config and the key records: a handful.
        self._core_limits: dict[tuple[int | None, int | None, int | None], _CoreLimits] = {}

    def take(self, subject: str, limits: Limits, tokens: int) -> Refusal | None:
        """Takes one request, `tokens` and a slot, all or none. None when taken (pair with `settle`, or `give_back`
        if the call does not go out), else why not."""
        core = self._core(limits)
        checks = _checks(subject, limits, core, tokens)
        refused = self._limiter.take_all(checks)
        if refused is None:
            return None
        wait, which = refused
        # The slot is the last check, so it is named only when every rate admitted the call.
        return Refusal(wait, concurrency=checks[which][1] is core.slots)

    def take_one(self, subject: str, per_minute: float, burst: float) -> float:
        """One event against a plain rate (e.g. failed authentications per address): 0.0 when admitted, else the
        seconds until it would be."""
        return self._limiter.take(subject, Limit.per_minute(per_minute, burst))

    def give_back(self, subject: str, limits: Limits, tokens: int) -> None:
        """Undoes a `take` whose call never went out."""
        for key, limit, n in _checks(subject, limits, self._core(limits), tokens):
            self._limiter.correct(key, limit, -n)

    def settle(self, subject: str, limits: Limits, reserved_tokens: int, used_tokens: int) -> None:
        """Ends a call that went out: frees its slot and corrects its token take to what was really used."""
        core = self._core(limits)
        _, tpm_key, slots_key = _bucket_keys(subject)
        if core.slots is not None:
            self._limiter.correct(slots_key, core.slots, -1.0)
        if core.tpm is not None and limits.tpm is not None and used_tokens != reserved_tokens:
            self._limiter.correct(tpm_key, core.tpm, float(used_tokens - min(reserved_tokens, limits.tpm)))

    def _core(self, limits: Limits) -> _CoreLimits:
        values = (limits.rpm, limits.tpm, limits.max_concurrent)
        core = self._core_limits.get(values)
        if core is None:
            rpm, tpm, max_concurrent = values
            core = self._core_limits[values] = _CoreLimits(
                rpm=None if rpm is None else Limit.per_minute(rpm),
                tpm=None if tpm is None else Limit.per_minute(tpm),
                slots=None if max_concurrent is None else Limit.concurrent(max_concurrent, _SLOT_RECHECK_S),
            )
        return core


def _checks(subject: str, limits: Limits, core: _CoreLimits, tokens: int) -> list[tuple[str, Limit, float]]:
    """The rates first, the slot last: a refusal names the first check that refused."""
    rpm_key, tpm_key, slots_key = _bucket_keys(subject)
    checks: list[tuple[str, Limit, float]] = []
    if core.rpm is not None:
        checks.append((rpm_key, core.rpm, 1.0))
    if core.tpm is not None and limits.tpm is not None:
        checks.append((tpm_key, core.tpm, float(min(tokens, limits.tpm))))
    if core.slots is not None:
        checks.append((slots_key, core.slots, 1.0))
    return checks


@functools.lru_cache(maxsize=4096)
def _bucket_keys(subject: str) -> tuple[str, str, str]:
    """The limiter's bucket names of a subject (requests, tokens, calls in flight), built once per subject rather than
    three f-strings on every take and settle (subjects are keys and deployments: bounded, so the cache rarely evicts).
    """
    return f"{subject}:rpm", f"{subject}:tpm", f"{subject}:inflight"
