"""The Insights operations, for an admin or team-admin caller: replay an audited call, compare targets on one
request, read the drift monitor's model health, and the analytics of spend with its cheaper alternatives. Each
takes a caller that `check_insights` let in, scopes what it reads to the caller's team, and returns domain
objects; the servicer only translates."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.chat import ChatRequest
from gateway.config.learning import FeedbackConfig, FeedbackMetricConfig
from gateway.config.schema import ModelConfig
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from gateway.insights.correlations import (
    CallFacts,
    Cheaper,
    Relationship,
    ShadowFacts,
    cheaper_models,
    relationships,
)
from gateway.insights.runner import Outcome, request_from_audit, run
from gateway.insights.shadow import ShadowTraffic
from gateway.insights.similarity import word_cosine
from gateway.learning.ratings import quality
from gateway.observe.drift import DriftMonitor, ModelHealth
from gateway.observe.drift_share import SharedDrift
from gateway.observe.savings import Saving, UsageGroup, cheapest_alternatives, total_saving
from gateway.pipeline import CallInfo, CallKind, Pipeline
from gateway.policy.access import check_manages
from gateway.records.audit import AuditFilter, AuditRecord, UsageFilter, UsageRow
from gateway.records.governance import KeyRecord, Role
from gateway.store.analytics import AnalyticsStore, CallRow
from gateway.store.ledger import LedgerStore
from gateway.store.shadow import ShadowSummary

MAX_TARGETS = 8
MAX_ANALYSED_CALLS = 100_000
"""The relationships read at most this many calls, the latest of the range: bounded time and memory."""


@dataclass(frozen=True, slots=True)
class Replayed:
    original: AuditRecord
    outcome: Outcome
    similarity: float
    """Word cosine of the stored answer and the new one."""


@dataclass(frozen=True, slots=True)
class Comparison:
    targets: list[str]
    outcomes: list[Outcome]
    similarities: list[tuple[str, str, float]]
    """(a, b, word cosine) for each pair of targets that both answered."""


@dataclass(frozen=True, slots=True)
class Analytics:
    savings: list[Saving]
    calls: dict[tuple[str, str, str], tuple[int, int, float]]
    """(team, model, route) -> calls, errors, mean latency."""
    total_saving_usd: float
    shadows: list[ShadowSummary]
    """Per route, primary model and shadow model: how the shadow's copies compared."""
    relationships: list[Relationship]
    cheaper: Cheaper
    analysed_calls: int
    """The answered calls the relationships read (the latest MAX_ANALYSED_CALLS of the range at most)."""
    quality_metric: str
    deferred: dict[tuple[str, str, str], UsageRow]
    """(team, model, route) -> the ledger's sums, for the groups with deferred calls."""


class InsightsOperations:
    def __init__(
        self,
        pipeline: Pipeline,
        ledger: LedgerStore,
        drift: DriftMonitor | None,
        models: list[ModelConfig],
        shadow: ShadowTraffic,
        facts: AnalyticsStore,
        metrics: FeedbackConfig,
        *,
        shared_drift: SharedDrift | None = None,
    ) -> None:
        """`shared_drift`: under --workers, model health merged from every worker of the machine (drift_share.py);
        else this process's monitor answers."""
        self._pipeline = pipeline
        self._ledger = ledger
        self._drift = drift
        self._shared_drift = shared_drift
        self._models = models
        self._shadow = shadow
        self._facts = facts
        self._metrics = metrics

    async def replay(
        self, caller: KeyRecord, request_id: str, target: str, overrides: dict[str, Any], info: CallInfo
    ) -> Replayed:
        """The audited call sent again (to its model or route, or `target`) under the caller's key."""
        original = await self._audited(caller, request_id)
        chat = request_from_audit(original, model=target or original.model, overrides=overrides)
        outcome = await run(self._pipeline, chat, info, kind=CallKind.REPLAY, method="Replay")
        if outcome.error is not None:
            raise outcome.error
        return Replayed(original, outcome, word_cosine(original.response_body or "", outcome.text))

    async def compare(self, caller: KeyRecord, targets: list[str], chat: ChatRequest, info: CallInfo) -> Comparison:
        """One request to each target at once, each through the whole pipeline; a target's failure is its result."""
        if not targets or len(targets) > MAX_TARGETS:
            raise InvalidRequest(f"targets: name 1 to {MAX_TARGETS} models or routes", reason="BAD_TARGETS")
        if len(set(targets)) != len(targets):
            raise InvalidRequest("targets: each model or route once", reason="BAD_TARGETS")
        outcomes = list(
            await asyncio.gather(
                *(
                    run(
                        self._pipeline,
                        dataclasses.replace(chat, model=t),
                        info,
                        kind=CallKind.COMPARE,
                        method="Compare",
                    )
                    for t in targets
                )
            )
        )
        answered = [(t, o.text) for t, o in zip(targets, outcomes, strict=True) if o.error is None]
        similarities = [
            (a, b, word_cosine(text_a, text_b)) for (a, text_a), (b, text_b) in itertools.combinations(answered, 2)
        ]
        return Comparison(targets, outcomes, similarities)

    async def model_health(self, caller: KeyRecord, model: str, provider: str) -> list[ModelHealth]:
        """What the drift monitors know of each (model, provider), narrowed to those given: every worker's calls
        under --workers, this process's otherwise."""
        if self._drift is None:
            raise FailedPrecondition("drift monitoring is off (observe.drift.enabled)", reason="DRIFT_OFF")
        if self._shared_drift is not None:
            return await self._shared_drift.health(model, provider)
        drift = self._drift
        pairs = [(m, p) for m, p in drift.pairs() if (not model or m == model) and (not provider or p == provider)]
        return [h for h in (drift.model_health(m, p) for m, p in pairs) if h is not None]

    async def analytics(
        self,
        caller: KeyRecord,
        team: str | None,
        since: float,
        until: float,
        route: str | None = None,
        quality_metric: str = "",
    ) -> Analytics:
        """Spend per team, model and route with what the cheapest capable model would have cost, the shadow
        copies' comparisons, and the relationships of the calls' features with how they went; of one route when
        `route` is given. A team admin sees only their own team. `quality_metric`: the feedback metric that
        measures quality (default: the first declared)."""
        metric = self._quality_metric(quality_metric)
        if caller.role is not Role.ADMIN:
            check_manages(caller, team or caller.team)
            team = caller.team
        where = UsageFilter(since, until, team=team)
        usage = await self._ledger.usage_by_team_model_route(where)
        calls = await self._ledger.call_stats(where)
        groups = [
            UsageGroup(
                team=group_team,
                model=model,
                route=group_route,
                requests=row.requests,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                cost_usd=Decimal(str(row.cost_usd)),
                cached_tokens=row.cached_tokens,
            )
            for group_team, model, group_route, row in usage
            if route is None or group_route == route
        ]
        savings = cheapest_alternatives(groups, self._models)
        shadows = await self._shadow.summaries(since, until, team=team, route=route)
        rows = await self._facts.calls(since, until, team, route, metric.name if metric else "", MAX_ANALYSED_CALLS)
        copies = await self._facts.shadows(since, until, team, route)
        prices = {m.name: m.input_cost_per_mtok + m.output_cost_per_mtok for m in self._models}
        facts = [_facts(row, metric) for row in rows]
        shadow_facts = [
            ShadowFacts(_query_type(copy.learned), copy.model, copy.shadow_model, copy.similarity) for copy in copies
        ]
        found, cheaper = await asyncio.to_thread(
            lambda: (relationships(facts), cheaper_models(facts, shadow_facts, prices))
        )
        return Analytics(
            savings,
            calls,
            float(total_saving(savings)),
            shadows,
            found,
            cheaper,
            len(facts),
            metric.name if metric else "",
            {
                (group_team, model, group_route): row
                for group_team, model, group_route, row in usage
                if row.deferred_calls and (route is None or group_route == route)
            },
        )

    def _quality_metric(self, name: str) -> FeedbackMetricConfig | None:
        if not name:
            return self._metrics.metrics[0] if self._metrics.metrics else None
        metric = self._metrics.metric(name)
        if metric is None:
            declared = ", ".join(m.name for m in self._metrics.metrics) or "none"
            raise InvalidRequest(
                f"quality_metric {name!r} is not declared; declared metrics: {declared}", reason="UNKNOWN_METRIC"
            )
        return metric

    async def _audited(self, caller: KeyRecord, request_id: str) -> AuditRecord:
        if not request_id:
            raise InvalidRequest("request_id is required: the id of an audited call (ChatResponse.id)")
        await self._pipeline.flush_audit()  # a call answered a moment ago may still wait for its audit batch
        found = await self._ledger.query_audit(AuditFilter(request_id=request_id, limit=1))
        if not found:
            raise NotFound(f"no audited call {request_id!r}", reason="UNKNOWN_REQUEST")
        record = found[0]
        if caller.role is not Role.ADMIN:
            check_manages(caller, record.team)
        return record


def _query_type(learned: dict[str, Any] | None) -> str:
    return str(learned.get("query_type", "")) if learned else ""


def _facts(row: CallRow, metric: FeedbackMetricConfig | None) -> CallFacts:
    rated = None if row.rating is None or metric is None else quality(metric, row.rating)
    return CallFacts(
        row.model, row.at, row.prompt_tokens, _query_type(row.learned), row.latency_ms, row.cost_usd, rated
    )


def check_insights(caller: KeyRecord) -> None:
    """Insights is for admin and team-admin keys; the servicer checks this before it reads the request."""
    if caller.role is Role.MEMBER:
        raise PermissionDenied(
            f"key {caller.id} is a member key; Insights needs an admin or team-admin key", reason="ADMIN_REQUIRED"
        )
