"""Retry delays: exponential backoff with full jitter, never shorter than what the provider asked for."""

from __future__ import annotations

import random

from gateway.config.routes import RetryConfig


def backoff_s(
    retry: int, config: RetryConfig, retry_after_s: float | None = None, rng: random.Random | None = None
) -> float:
    """Delay before retry number `retry` (1 = the first retry). Full jitter (uniform in [0, cap]) spreads clients that
    failed together; a provider's Retry-After is a floor, since calling earlier only earns another 429."""
    cap = min(config.max_backoff_ms, config.backoff_ms * 2 ** (retry - 1)) / 1000
    delay = (rng or random).uniform(0, cap)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay
