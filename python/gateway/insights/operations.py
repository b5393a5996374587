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
from gateway.config.schema import ModelConfig
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from gateway.insights.runner import Outcome, request_from_audit, run
from gateway.insights.similarity import word_cosine
from gateway.observe.drift import DriftMonitor, ModelHealth
from gateway.observe.drift_share import SharedDrift
from gateway.observe.savings import Saving, UsageGroup, cheapest_alternatives, total_saving
from gateway.pipeline import CallInfo, CallKind, Pipeline
from gateway.policy.access import check_manages
from gateway.records.audit import AuditFilter, AuditRecord, UsageFilter
from gateway.records.governance import KeyRecord, Role
from gateway.store.ledger import LedgerStore

MAX_TARGETS = 8


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


class InsightsOperations:
    def __init__(
        self,
        pipeline: Pipeline,
        ledger: LedgerStore,
        drift: DriftMonitor | None,
        models: list[ModelConfig],
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

    async def analytics(self, caller: KeyRecord, team: str | None, since: float, until: float) -> Analytics:
        """Spend per team, model and route with what the cheapest capable model would have cost; a team admin sees
        only their own team."""
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
                route=route,
                requests=row.requests,
                prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
                cost_usd=Decimal(str(row.cost_usd)),
                cached_tokens=row.cached_tokens,
            )
            for group_team, model, route, row in usage
        ]
        savings = cheapest_alternatives(groups, self._models)
        return Analytics(savings, calls, float(total_saving(savings)))

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


def check_insights(caller: KeyRecord) -> None:
    """Insights is for admin and team-admin keys; the servicer checks this before it reads the request."""
    if caller.role is Role.MEMBER:
        raise PermissionDenied(
            f"key {caller.id} is a member key; Insights needs an admin or team-admin key", reason="ADMIN_REQUIRED"
        )
