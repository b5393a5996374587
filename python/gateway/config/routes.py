"""The schema of `routes:` (strategies, retries, timeouts, queueing, hedging) and of circuit breakers."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from gateway.config.base import Name, Strict
from gateway.config.cache import CachePolicyConfig
from gateway.config.learning import LearnedConfig


class Strategy(StrEnum):
    FALLBACK = "fallback"
    WEIGHTED = "weighted"
    LEAST_LATENCY = "least_latency"
    COST = "cost"
    RULES = "rules"
    LEARNED = "learned"


class RouteTargetConfig(Strict):
    model: Name = Field(description="A model name from models:.")
    weight: float = Field(default=1.0, ge=0, description="weighted: the share of traffic, relative to the others.")


class RetryConfig(Strict):
    max_attempts: int = Field(default=3, ge=1, le=10, description="Attempts in all, across targets.")
    backoff_ms: float = Field(default=100.0, ge=0, description="Base of the exponential backoff (full jitter).")
    max_backoff_ms: float = Field(default=5_000.0, ge=0)


class TimeoutConfig(Strict):
    ttft_ms: float | None = Field(default=None, gt=0, description="Until the first chunk (streams) or the answer.")
    stall_ms: float | None = Field(default=None, gt=0, description="Streams: the longest silence between chunks.")
    total_ms: float | None = Field(default=None, gt=0, description="One attempt, from start to the last chunk.")


class QueueConfig(Strict):
    max_size: int = Field(default=64, ge=0, description="Waiting requests per route; 0 turns queueing off.")
    max_wait_ms: float = Field(default=2_000.0, ge=0)


class HedgeConfig(Strict):
    percentile: float = Field(default=90.0, gt=0, lt=100, description="Of the first target's recent TTFT.")
    min_delay_ms: float = Field(default=20.0, ge=0)
    max_delay_ms: float = Field(default=2_000.0, ge=0)


class CircuitBreakerConfig(Strict):
    consecutive_failures: int = Field(default=5, ge=1, description="Open after this many failures in a row...")
    error_rate: float = Field(default=0.5, gt=0, le=1, description="...or this share of failures in the window")
    window: int = Field(default=20, ge=1, description="Outcomes remembered per target.")
    min_calls: int = Field(default=10, ge=1, description="Calls in the window before error_rate applies.")
    open_s: float = Field(default=10.0, gt=0, description="How long an open breaker skips its target before a probe.")


class RuleCondition(Strict):
    """Every condition set must hold for the rule to match."""

    min_prompt_tokens: int | None = Field(default=None, ge=0)
    max_prompt_tokens: int | None = Field(default=None, ge=0)
    keywords: list[str] = Field(
        default_factory=list, description="Any of these words (case-insensitive) in the prompt."
    )
    regex: str | None = Field(default=None, description="A Python regex searched in the prompt.")
    metadata: dict[str, str] = Field(default_factory=dict, description="Request metadata that must be equal.")
    has_images: bool | None = None
    has_tools: bool | None = None
    teams: list[str] = Field(default_factory=list, description="The caller's team must be one of these.")

    @model_validator(mode="after")
    def _check_regex(self) -> Self:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as err:
                raise ValueError(f"regex {self.regex!r} does not compile: {err}") from None
        return self


class RuleConfig(Strict):
    name: str = Field(min_length=1, description="Shown as the routing reason when the rule matches.")
    when: RuleCondition
    target: Name = Field(description="A model or another route.")


class RouteConfig(Strict):
    name: Name = Field(description="What clients put in ChatRequest.model.")
    strategy: Strategy = Strategy.FALLBACK
    targets: list[RouteTargetConfig] = Field(default_factory=list)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    hedge: HedgeConfig | None = Field(default=None, description="Set to race a second target against a slow first.")
    sticky: str | None = Field(
        default=None,
        pattern=r"^(user|metadata:.+)$",
        description="weighted: keep a caller on one arm by `user` or by `metadata:<key>`.",
    )
    exploration: float = Field(default=0.05, ge=0, le=1, description="least_latency: share of calls sent elsewhere.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="cost: skip targets whose estimate is higher.")
    max_latency_ms: float | None = Field(default=None, gt=0, description="cost: skip targets slower than this (EWMA).")
    rules: list[RuleConfig] = Field(default_factory=list)
    default: Name | None = Field(default=None, description="rules: where requests no rule matched go.")
    cache: CachePolicyConfig | None = Field(default=None, description="Unset: calls to this route are not cached.")
    learned: LearnedConfig | None = Field(default=None, description="learned: the objective and how to explore.")

    @model_validator(mode="after")
    def _check_strategy_fields(self) -> Self:
        if self.strategy is Strategy.RULES:
            if not self.rules or self.default is None:
                raise ValueError("strategy rules needs rules: and default:")
        elif not self.targets:
            raise ValueError(f"strategy {self.strategy.value} needs at least one target")
        if self.strategy is Strategy.WEIGHTED and not any(t.weight > 0 for t in self.targets):
            raise ValueError("strategy weighted needs a target with a positive weight")
        if (self.strategy is Strategy.LEARNED) != (self.learned is not None):
            raise ValueError("strategy learned needs learned:, and learned: needs strategy learned")
        return self
