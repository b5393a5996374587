"""Provider quotas: requests and tokens per minute and calls in flight that a deployment's account allows, kept by the
Rust core's rate limiter. The only importer of gateway._core's RateLimiter for this concern."""

from __future__ import annotations

from gateway._core import RateLimiter
from gateway.config.schema import QuotaConfig
from gateway.routing.catalog import Target

_PER_MINUTE = 1 / 60
# A full concurrency quota frees a slot when some call ends; waiting callers look again this often.
_SLOT_RECHECK_S = 0.05


class Quotas:
    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter or RateLimiter()

    def take(self, target: Target, tokens: int) -> float:
        """Takes one request and `tokens` from the target's per-minute quotas, all or none, and a concurrency slot.
        Returns 0.0 when taken (pair with `release`), else the seconds until the quotas would admit."""
        quota = target.model.quota
        if quota is None:
            return 0.0
        limits = _limits(target.key, quota, tokens)
        if limits:
            wait = self._limiter.check_many(limits)
            if wait > 0.0:
                return wait
        if quota.max_concurrent is not None and not self._limiter.acquire(
            f"{target.key}:inflight", quota.max_concurrent
        ):
            for key, rate, burst, cost in limits:
                self._limiter.adjust(key, rate, burst, -cost)  # this call does not go out now
            return _SLOT_RECHECK_S
        return 0.0

    def give_back(self, target: Target, tokens: int) -> None:
        """Undoes a `take` whose call never went out."""
        quota = target.model.quota
        if quota is None:
            return
        for key, rate, burst, cost in _limits(target.key, quota, tokens):
            self._limiter.adjust(key, rate, burst, -cost)
        if quota.max_concurrent is not None:
            self._limiter.release(f"{target.key}:inflight")

    def settle(self, target: Target, reserved_tokens: int, used_tokens: int) -> None:
        """Ends a call that went out: frees its slot and corrects its token take to what the provider billed."""
        quota = target.model.quota
        if quota is None:
            return
        if quota.max_concurrent is not None:
            self._limiter.release(f"{target.key}:inflight")
        if quota.tpm is not None and used_tokens != reserved_tokens:
            delta = float(used_tokens - min(reserved_tokens, quota.tpm))
            self._limiter.adjust(f"{target.key}:tpm", quota.tpm * _PER_MINUTE, float(quota.tpm), delta)


def _limits(key: str, quota: QuotaConfig, tokens: int) -> list[tuple[str, float, float, float]]:
    limits: list[tuple[str, float, float, float]] = []
    if quota.rpm is not None:
        limits.append((f"{key}:rpm", quota.rpm * _PER_MINUTE, float(quota.rpm), 1.0))
    if quota.tpm is not None:
        limits.append((f"{key}:tpm", quota.tpm * _PER_MINUTE, float(quota.tpm), float(min(tokens, quota.tpm))))
    return limits
