"""A call's audit record (which also yields its ledger entry), and the shapes of usage queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.records.governance import Period


@dataclass(slots=True)
class AuditRecord:
    """One record per call. Holds ids, never a key; bodies only when the team's policy keeps them."""

    request_id: str
    at: float
    """Epoch seconds when the call arrived."""
    key_id: str = ""
    team: str = ""
    peer: str = ""
    kind: str = "chat"
    """chat, stream, compare, replay, embed, batch (BATCH_KIND), or shadow (SHADOW_KIND)."""
    api: str = "grpc"
    """The front door the call came through: grpc or http."""
    model: str = ""
    """What the caller asked for: a model or a route."""
    route: str = ""
    served_model: str = ""
    provider: str = ""
    status: str = "OK"
    """The gRPC status code name the caller got."""
    reason: str = ""
    error: str = ""
    latency_ms: float = 0.0
    ttfc_ms: float | None = None
    """A stream's time from its arrival to its first chunk sent; None for a call that sent none (not a stream, or
    one that failed before its first chunk)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    """Actions taken, by type, entity kind and count; never the values found."""
    classification: str = ""
    request_body: dict[str, Any] | None = None
    """{"messages": [...], "parameters": {...}} when the team's body policy keeps bodies."""
    response_body: str | None = None
    cache: dict[str, Any] | None = None
    """Set when the response cache answered: kind, similarity, entry_id, age_s."""
    cache_saved_usd: float = 0.0
    """What a cache hit would have cost from the provider."""
    prices: dict[str, Any] | None = None
    """The prices the call was billed at (per million tokens, and the time-of-day window that applied), set when
    the serving model has time-of-day prices."""
    deferred: dict[str, Any] | None = None
    """A deferred call's holding: its group, how long it was held, whether its prefix came from the provider's
    cache, the price window it waited for, and `interactive_usd`, what its usage costs sent at once."""
    learned: dict[str, Any] | None = None
    """A learned route's decision: query type, model, each arm's probability of being picked, exploration."""
    writer: str = ""
    """The process that wrote the record (host, pid and a token of its start); set by the audit log."""
    seq: int = 0
    """The record's number in its writer's sequence, from 1: a missing number is a lost record."""
    batch_id: str = ""
    """The Batches service's batch this call was an item of."""
    trace_id: str = ""
    """The call's W3C trace id (32 hex digits) when the gateway traced it or the caller sent a `traceparent`."""

    @property
    def billable(self) -> bool:
        """Whether the call was served (by a provider or the cache) and so belongs in the ledger."""
        return bool(self.provider) and (
            self.prompt_tokens > 0 or self.completion_tokens > 0 or self.cost_usd > 0 or self.cache is not None
        )


BATCH_KIND = "batch"
"""The kind of a batch item's record (the Batches service): answered through a provider's batch API."""

SHADOW_KIND = "shadow"
"""The kind of a call the gateway copied to a route's shadow model: its spend counts in no key's or team's budget or
usage (insights/shadow.py keeps its own)."""


class GroupBy(StrEnum):
    KEY = "key"
    TEAM = "team"
    MODEL = "model"
    PROVIDER = "provider"


@dataclass(frozen=True, slots=True)
class UsageFilter:
    since: float
    until: float
    team: str | None = None
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    group: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    cache_hits: int = 0
    cache_saved_usd: float = 0.0
    deferred_calls: int = 0
    """Deferred calls among `requests`, their cost, and what the same usage costs sent at once."""
    deferred_cost_usd: float = 0.0
    deferred_interactive_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Forecast:
    period: Period
    period_start: float
    period_end: float
    spent_usd: float
    forecast_usd: float
    """Spend so far plus the recent rate carried to the period's end."""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: float | None = None
    until: float | None = None
    team: str | None = None
    key_id: str | None = None
    request_id: str | None = None
    status: str | None = None
    limit: int = 100
