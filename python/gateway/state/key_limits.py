"""A key's own rate limits (requests and tokens per minute, calls in flight): refused with RESOURCE_EXHAUSTED and
the wait, where a provider quota would make the call wait instead."""

from __future__ import annotations

from gateway.errors import RateLimited
from gateway.limits import LimitKeeper
from gateway.records.governance import KeyLimits, KeyRecord


class KeyLimiter:
    def __init__(self, keeper: LimitKeeper | None = None) -> None:
        self._keeper = keeper or LimitKeeper()

    def admit(self, key: KeyRecord, tokens: int) -> None:
        """Takes one request, `tokens` and a slot, all or none. Pair an admitted call with `release`."""
        refusal = self._keeper.take(key.id, key.limits, tokens)
        if refusal is None:
            return
        if refusal.concurrency:
            raise RateLimited(
                f"key {key.id} already has {key.limits.max_concurrent} calls in flight, its limit",
                reason="KEY_CONCURRENCY_LIMITED",
                retry_after=refusal.wait_s,
            )
        raise RateLimited(
            f"key {key.id} is over its rate limit ({describe(key.limits)}); retry in {refusal.wait_s:.2f} s",
            reason="KEY_RATE_LIMITED",
            retry_after=refusal.wait_s,
        )

    def release(self, key: KeyRecord, reserved_tokens: int, used_tokens: int) -> None:
        """Ends an admitted call: frees its slot and corrects its token take to the provider's usage."""
        self._keeper.settle(key.id, key.limits, reserved_tokens, used_tokens)


def describe(limits: KeyLimits) -> str:
    parts = []
    if limits.rpm is not None:
        parts.append(f"{limits.rpm} requests/min")
    if limits.tpm is not None:
        parts.append(f"{limits.tpm} tokens/min")
    return ", ".join(parts)
