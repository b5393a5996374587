"""The Insights service: translates protobuf to the Insights operations and back."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Literal

import grpc
from llmgateway.v1 import gateway_pb2 as gpb
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.chat import Usage
from gateway.errors import InvalidRequest
from gateway.insights.correlations import Relationship
from gateway.insights.evaluation import PolicyEvaluator
from gateway.insights.feedback import FeedbackOperations
from gateway.insights.operations import Analytics, InsightsOperations, check_insights
from gateway.insights.runner import Outcome
from gateway.learning.evaluation import Estimate, PolicyValue
from gateway.learning.profiles import Profile
from gateway.learning.ratings import Given, Source
from gateway.observe.drift import DriftFlag, Figures, ModelHealth
from gateway.policy.keyring import KeyRing
from gateway.records.audit import AuditRecord, UsageRow
from gateway.records.governance import KeyRecord
from gateway.server.admin_convert import time_range, timestamp
from gateway.server.convert import chat_request_from_proto, route_to_proto, usage_to_proto
from gateway.server.errors import unary
from gateway.server.servicer import call_info
from gateway.store.shadow import ShadowSummary

Context = grpc.aio.ServicerContext[Any, Any]
_ANALYTICS_RANGE_S = 7 * 86_400.0
_EVALUATION_RANGE_S = 30 * 86_400.0
_OVERRIDES: tuple[Literal["max_tokens", "temperature", "top_p", "seed"], ...] = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
)


class InsightsServicer(insights_pb2_grpc.InsightsServicer):
    def __init__(
        self,
        operations: InsightsOperations,
        feedback: FeedbackOperations,
        evaluator: PolicyEvaluator,
        ring: KeyRing,
        max_input_chars: int,
    ) -> None:
        self._ops = operations
        self._feedback = feedback
        self._evaluator = evaluator
        self._ring = ring
        self._max_input_chars = max_input_chars

    def _caller(self, context: Context) -> KeyRecord:
        caller = self._ring.authenticate(context.invocation_metadata(), context.peer())
        check_insights(caller)
        return caller

    @unary
    async def Replay(self, request: pb.ReplayRequest, context: Context) -> pb.ReplayResponse:  # noqa: N802
        given = request.overrides
        overrides: dict[str, Any] = {name: getattr(given, name) for name in _OVERRIDES if given.HasField(name)}
        replayed = await self._ops.replay(
            self._caller(context),
            request.request_id,
            request.target,
            overrides,
            call_info(context),
        )
        return pb.ReplayResponse(
            original=_audited_response(replayed.original),
            replayed=_response(replayed.outcome),
            original_latency_ms=replayed.original.latency_ms,
            replayed_latency_ms=replayed.outcome.latency_ms,
            similarity=replayed.similarity,
        )

    @unary
    async def Compare(self, request: pb.CompareRequest, context: Context) -> pb.CompareResponse:  # noqa: N802
        caller = self._caller(context)
        proto = gpb.ChatRequest()
        proto.CopyFrom(request.request)
        proto.model = request.targets[0] if request.targets else ""
        chat = chat_request_from_proto(proto)
        if chat.text_chars > self._max_input_chars:
            raise InvalidRequest(f"the input is over the gateway's limit of {self._max_input_chars} characters")
        comparison = await self._ops.compare(caller, list(request.targets), chat, call_info(context))
        return pb.CompareResponse(
            results=[_result(t, o) for t, o in zip(comparison.targets, comparison.outcomes, strict=True)],
            similarities=[pb.Similarity(a=a, b=b, score=score) for a, b, score in comparison.similarities],
        )

    @unary
    async def GetModelHealth(  # noqa: N802 - gRPC name
        self, request: pb.GetModelHealthRequest, context: Context
    ) -> pb.GetModelHealthResponse:
        caller = self._caller(context)
        health = await self._ops.model_health(caller, request.model, request.provider)
        return pb.GetModelHealthResponse(models=[_health_to_proto(h) for h in health])

    @unary
    async def GetAnalytics(  # noqa: N802 - gRPC name
        self, request: pb.GetAnalyticsRequest, context: Context
    ) -> pb.GetAnalyticsResponse:
        caller = self._caller(context)
        since, until = time_range(request, _ANALYTICS_RANGE_S, time.time())
        analytics = await self._ops.analytics(
            caller, request.team or None, since, until, request.route or None, request.quality_metric
        )
        rows = _analytics_rows(analytics)
        return pb.GetAnalyticsResponse(
            total_deferred_cost_usd=sum(r.deferred_cost_usd for r in rows),
            total_deferred_interactive_usd=sum(r.deferred_interactive_usd for r in rows),
            rows=rows,
            total_cost_usd=sum(r.cost_usd for r in rows),
            total_saving_usd=analytics.total_saving_usd,
            shadows=[_shadow_summary(s) for s in analytics.shadows],
            relationships=[_relationship(r) for r in analytics.relationships],
            cheaper=[pb.CheaperAlternative(**dataclasses.asdict(a)) for a in analytics.cheaper.alternatives],
            share_handled_by_cheaper=analytics.cheaper.share_as_well,
            cheaper_saving_usd=analytics.cheaper.saving_usd,
            analysed_calls=analytics.analysed_calls,
            quality_metric=analytics.quality_metric,
        )

    @unary
    async def Feedback(self, request: pb.FeedbackRequest, context: Context) -> pb.FeedbackResponse:  # noqa: N802
        # Any key may rate its own calls: authenticated here, authorized against the call's record.
        caller = self._ring.authenticate(context.invocation_metadata(), context.peer())
        ratings = [_given(r) for r in request.ratings]
        recorded = await self._feedback.give(
            caller, request.request_id, ratings, request.comment, _SOURCES[request.source]
        )
        return pb.FeedbackResponse(
            recorded=[pb.RecordedRating(metric=r.metric, replaced=r.replaced, quality=r.quality) for r in recorded]
        )

    @unary
    async def GetProfiles(  # noqa: N802 - gRPC name
        self, request: pb.GetProfilesRequest, context: Context
    ) -> pb.GetProfilesResponse:
        self._caller(context)
        profiles = await self._feedback.profiles_of(request.route, request.query_type)
        return pb.GetProfilesResponse(profiles=[_profile(p) for p in profiles])

    @unary
    async def EvaluatePolicy(  # noqa: N802 - gRPC name
        self, request: pb.EvaluatePolicyRequest, context: Context
    ) -> pb.EvaluatePolicyResponse:
        caller = self._caller(context)
        since, until = time_range(request, _EVALUATION_RANGE_S, time.time())
        evaluation = await self._evaluator.evaluate(caller, request.route, since, until)
        return pb.EvaluatePolicyResponse(
            route=evaluation.route,
            rated_calls=evaluation.rated_calls,
            policies=[_policy_estimate(p) for p in evaluation.policies],
        )


_SOURCES = {
    pb.FEEDBACK_SOURCE_UNSPECIFIED: Source.CALLING_SERVICE,
    pb.FEEDBACK_SOURCE_END_USER: Source.END_USER,
    pb.FEEDBACK_SOURCE_CALLING_SERVICE: Source.CALLING_SERVICE,
    pb.FEEDBACK_SOURCE_EVALUATOR: Source.EVALUATOR,
}


def _given(rating: pb.MetricRating) -> Given:
    kind = rating.WhichOneof("value")
    return Given(
        rating.metric,
        boolean=rating.boolean if kind == "boolean" else None,
        score=rating.score if kind == "score" else None,
        label=rating.label if kind == "label" else None,
    )


def _profile(profile: Profile) -> pb.ModelProfile:
    return pb.ModelProfile(
        route=profile.route,
        query_type=profile.query_type,
        model=profile.model,
        calls=profile.calls,
        feedback=profile.feedback,
        quality=profile.quality,
        quality_sd=profile.quality_sd,
        error_rate=profile.error_rate,
        refusal_rate=profile.refusal_rate,
        latency_p50_s=profile.latency_quantile(0.5),
        latency_p90_s=profile.latency_quantile(0.9),
        cost_usd=profile.cost_usd,
        answer_tokens=profile.answer_tokens,
    )


def _policy_estimate(value: PolicyValue) -> pb.PolicyEstimate:
    def estimate(found: Estimate | None) -> pb.PolicyEstimateValue | None:
        return None if found is None else pb.PolicyEstimateValue(**dataclasses.asdict(found))

    return pb.PolicyEstimate(
        policy=value.name,
        estimable=value.estimable,
        reason=value.reason,
        support=value.support,
        matched=value.matched,
        objective=estimate(value.objective),
        quality=estimate(value.quality),
        cost_usd=estimate(value.cost_usd),
    )


def _relationship(found: Relationship) -> pb.Relationship:
    return pb.Relationship(
        model=found.model,
        feature=found.feature,
        outcome=found.outcome,
        calls=found.calls,
        eta_squared=found.eta_squared,
        groups=[pb.FeatureGroup(value=g.value, calls=g.calls, mean=g.mean, effect=g.effect) for g in found.groups],
    )


def _shadow_summary(summary: ShadowSummary) -> pb.ShadowSummary:
    return pb.ShadowSummary(
        route=summary.route,
        primary_model=summary.primary_model,
        shadow_model=summary.shadow_model,
        mirrored=summary.mirrored,
        answered=summary.answered,
        failed=summary.failed,
        refused=summary.refused,
        over_budget=summary.over_budget,
        busy=summary.busy,
        primary_latency_ms=summary.primary_latency_ms,
        shadow_latency_ms=summary.shadow_latency_ms,
        primary_cost_usd=summary.primary_cost_usd,
        shadow_cost_usd=summary.shadow_cost_usd,
        mean_similarity=summary.similarity,
    )


_NOTHING_DEFERRED = UsageRow("", 0, 0, 0, 0, 0.0)


def _analytics_rows(analytics: Analytics) -> list[pb.AnalyticsRow]:
    rows = []
    for saving in analytics.savings:
        group = saving.group
        total, errors, latency = analytics.calls.get((group.team, group.model, group.route), (0, 0, 0.0))
        deferred = analytics.deferred.get((group.team, group.model, group.route), _NOTHING_DEFERRED)
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
                deferred_calls=deferred.deferred_calls,
                deferred_cost_usd=deferred.deferred_cost_usd,
                deferred_interactive_usd=deferred.deferred_interactive_usd,
            )
        )
    return rows


def _response(outcome: Outcome) -> gpb.ChatResponse:
    call = outcome.call
    answer = call.answer
    target = answer.target
    assert target is not None
    assert answer.usage is not None
    assert call.plan is not None
    return gpb.ChatResponse(
        id=call.request_id,
        model=target.model.name,
        provider=target.provider.name,
        message=gpb.Message(role="assistant", content=outcome.text),
        finish_reason=answer.finish_reason,
        usage=usage_to_proto(answer.usage, answer.cost_usd),
        upstream_model=answer.upstream_model,
        simulated=target.provider.simulated,
        route=route_to_proto(call.plan, call.execution.attempts if call.execution is not None else []),
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
            pb.CallError(code=outcome.error.kind.value, message=outcome.error.message, reason=outcome.error.reason)
        )
    else:
        result.response.CopyFrom(_response(outcome))
    return result


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
