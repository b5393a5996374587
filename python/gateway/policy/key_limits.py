"""A key's own rate limits (requests and tokens per minute, calls in flight), kept by the Rust core's limiter: the
only importer of gateway._core's RateLimiter for this concern."""

from __future__ import annotations

from gateway._core import RateLimiter
from gateway.errors import RateLimited
from gateway.policy.records import KeyLimits, KeyRecord

_PER_MINUTE = 1 / 60
_SLOT_RETRY_S = 0.1


class KeyLimiter:
    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter or RateLimiter()

    def admit(self, key: KeyRecord, tokens: int) -> None:
        """Takes one request, `tokens` and a slot, all or none; RESOURCE_EXHAUSTED with the wait when refused.
        Pair an admitted call with `release`."""
        limits = key.limits
        checks = _rate_checks(key.id, limits, tokens)
        if checks:
            wait = self._limiter.check_many(checks)
            if wait > 0.0:
                raise RateLimited(
                    f"key {key.id} is over its rate limit ({_describe(limits)}); retry in {wait:.2f} s",
                    reason="KEY_RATE_LIMITED",
                    retry_after=wait,
                )
        if limits.max_concurrent is not None and not self._limiter.acquire(f"{key.id}:inflight", limits.max_concurrent):
            for name, rate, burst, cost in checks:
                self._limiter.adjust(name, rate, burst, -cost)
            raise RateLimited(
                f"key {key.id} already has {limits.max_concurrent} calls in flight, its limit",
                reason="KEY_CONCURRENCY_LIMITED",
                retry_after=_SLOT_RETRY_S,
            )

    def release(self, key: KeyRecord, reserved_tokens: int, used_tokens: int) -> None:
        """Ends an admitted call: frees its slot and corrects its token take to the provider's usage."""
        limits = key.limits
        if limits.max_concurrent is not None:
            self._limiter.release(f"{key.id}:inflight")
        if limits.tpm is not None and used_tokens != reserved_tokens:
            delta = float(used_tokens - min(reserved_tokens, limits.tpm))
            self._limiter.adjust(f"{key.id}:tpm", limits.tpm * _PER_MINUTE, float(limits.tpm), delta)


def _rate_checks(key_id: str, limits: KeyLimits, tokens: int) -> list[tuple[str, float, float, float]]:
    checks: list[tuple[str, float, float, float]] = []
    if limits.rpm is not None:
        checks.append((f"{key_id}:rpm", limits.rpm * _PER_MINUTE, float(limits.rpm), 1.0))
    if limits.tpm is not None:
        checks.append((f"{key_id}:tpm", limits.tpm * _PER_MINUTE, float(limits.tpm), float(min(tokens, limits.tpm))))
    return checks


def _describe(limits: KeyLimits) -> str:
    parts = []
    if limits.rpm is not None:
        parts.append(f"{limits.rpm} requests/min")
    if limits.tpm is not None:
        parts.append(f"{limits.tpm} tokens/min")
    return ", ".join(parts)
