"""The Insights service: Replay and Compare, run through the pipeline under the caller's (admin or team-admin) key."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from decimal import Decimal
from typing import Any

import grpc
from llmgateway.v1 import gateway_pb2 as gpb
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.chat import ChatRequest, Usage
from gateway.config.schema import ModelConfig
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from gateway.insights.runner import Outcome, request_from_audit, run
from gateway.insights.similarity import word_cosine
from gateway.ledger.records import AuditFilter, AuditRecord, UsageFilter
from gateway.observe.drift import DriftFlag, DriftMonitor, Figures, ModelHealth
from gateway.observe.savings import UsageGroup, cheapest_alternatives, total_saving
from gateway.pipeline import ChatPipeline
from gateway.policy.access import check_manages
from gateway.policy.keyring import KeyRing
from gateway.policy.records import KeyRecord, Role
from gateway.server.admin_convert import seconds, timestamp
from gateway.server.convert import chat_request_from_proto, route_to_proto, usage_to_proto
from gateway.server.errors import abort
from gateway.server.servicer import call_info
from gateway.store.ledger import LedgerStore

Context = grpc.aio.ServicerContext[Any, Any]
MAX_TARGETS = 8
_ANALYTICS_RANGE_S = 7 * 86_400.0


class InsightsServicer(insights_pb2_grpc.InsightsServicer):
    def __init__(
        self,
        pipeline: ChatPipeline,
        ring: KeyRing,
        ledger: LedgerStore,
        max_input_chars: int,
        drift: DriftMonitor | None,
        models: list[ModelConfig],
    ) -> None:
        self._pipeline = pipeline
        self._ring = ring
        self._ledger = ledger
        self._max_input_chars = max_input_chars
        self._drift = drift
        self._models = models

    def _caller(self, context: Context) -> KeyRecord:
        caller = self._ring.authenticate(context.invocation_metadata(), context.peer())
        if caller.role is Role.MEMBER:
            raise PermissionDenied(
                f"key {caller.id} is a member key; Insights needs an admin or team-admin key", reason="ADMIN_REQUIRED"
            )
        return caller

    async def Replay(self, request: pb.ReplayRequest, context: Context) -> pb.ReplayResponse:  # noqa: N802
        try:
            caller = self._caller(context)
            original = await self._audited(caller, request.request_id)
            overrides = {
                name: getattr(request.overrides, name)
                for name in ("max_tokens", "temperature", "top_p", "seed")
                if request.overrides.HasField(name)
            }
            chat = request_from_audit(original, model=request.target or original.model, overrides=overrides)
            outcome = _succeeded(await run(self._pipeline, chat, call_info(context), kind="replay", method="Replay"))
        except Exception as err:
            await abort(context, err)
        replayed = _response(outcome)
        return pb.ReplayResponse(
            original=_audited_response(original),
            replayed=replayed,
            original_latency_ms=original.latency_ms,
            replayed_latency_ms=outcome.latency_ms,
            similarity=word_cosine(original.response_body or "", outcome.text),
        )

    async def Compare(self, request: pb.CompareRequest, context: Context) -> pb.CompareResponse:  # noqa: N802
        try:
            self._caller(context)
            targets, chat = _comparison(request, self._max_input_chars)
            info = call_info(context)
            outcomes = await asyncio.gather(
                *(
                    run(self._pipeline, dataclasses.replace(chat, model=t), info, kind="compare", method="Compare")
                    for t in targets
                )
            )
        except Exception as err:
            await abort(context, err)
        results = [_result(target, outcome) for target, outcome in zip(targets, outcomes, strict=True)]
        answered = [(t, o.text) for t, o in zip(targets, outcomes, strict=True) if o.error is None]
        similarities = [
            pb.Similarity(a=a, b=b, score=word_cosine(text_a, text_b))
            for (a, text_a), (b, text_b) in itertools.combinations(answered, 2)
        ]
        return pb.CompareResponse(results=results, similarities=similarities)

    async def GetModelHealth(  # noqa: N802 - gRPC name
        self, request: pb.GetModelHealthRequest, context: Context
    ) -> pb.GetModelHealthResponse:
        try:
            self._caller(context)
            drift = _monitor(self._drift)
        except Exception as err:
            await abort(context, err)
        pairs = [
            (model, provider)
            for model, provider in drift.pairs()
            if (not request.model or model == request.model) and (not request.provider or provider == request.provider)
        ]
        health = [h for h in (drift.model_health(m, p) for m, p in pairs) if h is not None]
        return pb.GetModelHealthResponse(models=[_health_to_proto(h) for h in health])

    async def GetAnalytics(  # noqa: N802 - gRPC name
        self, request: pb.GetAnalyticsRequest, context: Context
    ) -> pb.GetAnalyticsResponse:
        try:
            caller = self._caller(context)
            team = request.team or None
            if caller.role is not Role.ADMIN:
                check_manages(caller, team or caller.team)
                team = caller.team
            until = seconds(request, "until") or time.time()
            where = UsageFilter(seconds(request, "since") or until - _ANALYTICS_RANGE_S, until, team=team)
            usage = await self._ledger.usage_by_team_model_route(where)
            calls = await self._ledger.call_stats(where)
        except Exception as err:
            await abort(context, err)
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
        rows = []
        for saving in savings:
            group = saving.group
            total, errors, latency = calls.get((group.team, group.model, group.route), (0, 0, 0.0))
            rows.append(
                pb.AnalyticsRow(
                    team=group.team,
                    model=group.model,
                    route=group.route,
                    requests=group.requests,
                    prompt_tokens=group.prompt_tokens,
                    completion_tokens=group.completion_tokens,
                    cost_usd=float(group.cost_usd),
                    calls=total,
                    error_rate=errors / total if total else 0.0,
                    mean_latency_ms=latency,
                    cheapest_model=saving.cheapest_model or "",
                    cheapest_cost_usd=float(saving.cheapest_cost_usd or 0),
                    saving_usd=float(saving.saving_usd),
                )
            )
        return pb.GetAnalyticsResponse(
            rows=rows,
            total_cost_usd=sum(r.cost_usd for r in rows),
            total_saving_usd=float(total_saving(savings)),
        )

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


def _comparison(request: pb.CompareRequest, max_input_chars: int) -> tuple[list[str], ChatRequest]:
    targets = list(request.targets)
    if not targets or len(targets) > MAX_TARGETS:
        raise InvalidRequest(f"targets: name 1 to {MAX_TARGETS} models or routes", reason="BAD_TARGETS")
    if len(set(targets)) != len(targets):
        raise InvalidRequest("targets: each model or route once", reason="BAD_TARGETS")
    proto = gpb.ChatRequest()
    proto.CopyFrom(request.request)
    proto.model = targets[0]
    chat = chat_request_from_proto(proto)
    if chat.text_chars > max_input_chars:
        raise InvalidRequest(f"the input is over the gateway's limit of {max_input_chars} characters")
    return targets, chat


def _succeeded(outcome: Outcome) -> Outcome:
    if outcome.error is not None:
        raise outcome.error
    return outcome


def _response(outcome: Outcome) -> gpb.ChatResponse:
    served = outcome.served
    admission = outcome.admission
    assert served is not None
    assert admission is not None
    return gpb.ChatResponse(
        id=outcome.request_id,
        model=served.target.model.name,
        provider=served.target.provider.name,
        message=gpb.Message(role="assistant", content=outcome.text),
        finish_reason=served.result.finish_reason,
        usage=usage_to_proto(served.usage, served.cost_usd),
        upstream_model=served.result.upstream_model,
        simulated=served.target.provider.simulated,
        route=route_to_proto(admission.plan, admission.attempts),
    )


def _audited_response(record: AuditRecord) -> gpb.ChatResponse:
    usage = Usage(record.prompt_tokens, record.completion_tokens, record.cached_tokens)
    return gpb.ChatResponse(
        id=record.request_id,
        model=record.served_model,
        provider=record.provider,
        message=gpb.Message(role="assistant", content=record.response_body or ""),
        usage=usage_to_proto(usage, record.cost_usd),
        route=gpb.RouteInfo(
            route=record.route,
            attempts=[gpb.Attempt(**attempt) for attempt in record.attempts],
        ),
    )


def _result(target: str, outcome: Outcome) -> pb.CompareResult:
    result = pb.CompareResult(target=target, latency_ms=outcome.latency_ms, time_to_first_chunk_ms=outcome.ttfc_ms)
    if outcome.error is not None:
        result.error.CopyFrom(
            pb.CallError(code=outcome.error.code.name, message=outcome.error.message, reason=outcome.error.reason)
        )
    else:
        result.response.CopyFrom(_response(outcome))
    return result


def _monitor(drift: DriftMonitor | None) -> DriftMonitor:
    if drift is None:
        raise FailedPrecondition("drift monitoring is off (observe.drift.enabled)", reason="DRIFT_OFF")
    return drift


def _health_to_proto(health: ModelHealth) -> pb.ModelHealth:
    return pb.ModelHealth(
        model=health.model,
        provider=health.provider,
        window_s=health.window_s,
        window_start=timestamp(health.window_start),
        current=[_figures(name, f) for name, f in sorted(health.current.items())],
        baseline=[_figures(name, f) for name, f in sorted(health.baseline.items())],
        flags=[_flag(f) for f in health.flags],
        ended=[_flag(f) for f in health.ended],
    )


def _figures(metric: str, figures: Figures) -> pb.MetricFigures:
    return pb.MetricFigures(
        metric=metric,
        count=figures.count,
        mean=figures.mean,
        p50=figures.p50,
        p95=figures.p95,
        shares=figures.shares or {},
    )


def _flag(flag: DriftFlag) -> pb.DriftFlag:
    return pb.DriftFlag(
        metric=flag.metric,
        statistic=flag.statistic,
        value=flag.value,
        threshold=flag.threshold,
        p_value=flag.p_value,
        since=timestamp(flag.since),
        windows=flag.windows,
        detail=flag.detail,
        until=timestamp(flag.until),
    )
