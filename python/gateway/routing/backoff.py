"""Retry delays: exponential backoff with full jitter."""

from __future__ import annotations

import random

from gateway.config.routes import RetryConfig


def backoff_s(retry: int, config: RetryConfig, rng: random.Random | None = None) -> float:
    """Delay before retry number `retry` (1 = the first retry). Full jitter (uniform in [0, cap]) spreads clients that
    failed together instead of sending them back in step. A provider's Retry-After is kept by the target's cooldown."""
    cap = min(config.max_backoff_ms, config.backoff_ms * 2 ** (retry - 1)) / 1000
    return (rng or random).uniform(0, cap)
