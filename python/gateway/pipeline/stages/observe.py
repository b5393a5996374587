"""What the operators see of a call: its trace span, the Prometheus metrics, and the drift monitor's figures, all
taken from the call's audit record once it is complete."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.ledger.budgets import BudgetBook
from gateway.observe.drift import DriftMonitor, route_rule_label
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.propagation import caller_trace_id
from gateway.observe.refusal import AnswerEdges
from gateway.observe.spans import CallTracer
from gateway.pipeline.call import Call, CallKind
from gateway.pipeline.stage import BaseStage
from gateway.records.governance import BudgetScope
from gateway.routing.health import BreakerState, HealthBoard
from gateway.routing.queue import WaitQueue

CACHE_PROVIDER_LABEL = "cache"
"""The provider label of calls the response cache answered, in the request metrics."""


class ObserveCall(BaseStage):
    """First in, last out: it sees every call, refused ones included, after its record is written."""

    name = "observe"

    def __init__(
        self,
        tracer: CallTracer,
        metrics: GatewayMetrics | None,
        drift: DriftMonitor | None,
        board: HealthBoard,
        queues: dict[str, WaitQueue],
        budgets: BudgetBook,
    ) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self._drift = drift
        self._board = board
        self._queues = queues
        self._budgets = budgets
        self._breakers: dict[str, BreakerState] = {}

    def enter(self, call: Call[Any]) -> None:
        info = call.info
        call.span = span = self._tracer.start_call(
            call.method, info.metadata, request_id=call.record.request_id, api=info.api
        )
        call.record.trace_id = span.audit_trace_id if self._tracer.enabled else caller_trace_id(info.metadata)
        if self._metrics is not None:
            self._metrics.observe_call_started(call.kind)
        if self._drift is not None and call.kind is not CallKind.EMBED:
            call.answer.edges = AnswerEdges()

    def first_chunk(self, call: Call[Any]) -> None:
        """A stream's first chunk left: the span's event and, for a provider's answer, its time-to-first-chunk."""
        call.span.first_chunk()
        answer = call.answer
        target = answer.target
        if self._metrics is not None and answer.hit is None and target is not None and answer.first_chunk_s:
            assert call.plan is not None
            self._metrics.observe_first_chunk(
                route=call.plan.route,
                model=target.model.name,
                provider=target.provider.name,
                seconds=answer.first_chunk_s,
            )

    def exit(self, call: Call[Any], error: BaseException | None) -> None:
        record, answer = call.record, call.answer
        if call.span.recording:  # a call sampled out, or with tracing off, has a span whose methods do nothing
            self._end_span(call, error)
        # Drift watches answers (length, refusals, finish reasons): embedding calls have none.
        if self._drift is not None and record.provider and record.cache is None and call.kind is not CallKind.EMBED:
            edges = answer.edges
            self._drift.observe_record(
                record,
                ttfc_s=answer.first_chunk_s,
                finish_reason=answer.finish_reason if answer.complete else "",
                refused=_refused(call, edges),
                route_rule=route_rule_label(record.route, call.plan.rule if call.plan is not None else None),
            )
        metrics = self._metrics
        if metrics is None:
            return
        metrics.observe_call(
            kind=record.kind,
            api=record.api,
            route=record.route,
            # The model that served, else the one asked for (a name the catalog does not know counts as "other").
            model=record.served_model or record.model,
            # A cached answer is the cache's, not the provider's: its latency must not blur the provider's.
            provider=CACHE_PROVIDER_LABEL if record.cache is not None else record.provider,
            code=record.status,
            duration_s=record.latency_ms / 1000,
            input_tokens=record.prompt_tokens,
            output_tokens=record.completion_tokens,
            cost_usd=record.cost_usd,
        )
        if call.admitted:
            self._observe_state(metrics, call)
        if record.guardrails:
            metrics.observe_guardrails(record.guardrails)
        if record.cache_saved_usd:
            metrics.observe_cache_saved(model=record.served_model, usd=record.cache_saved_usd)

    def _end_span(self, call: Call[Any], error: BaseException | None) -> None:
        record, span, answer = call.record, call.span, call.answer
        if record.guardrails:
            span.set_guardrails(record.guardrails)
        if record.provider:
            span.set_result(
                provider=record.provider,
                model=record.served_model,
                usage=answer.usage,
                cost_usd=record.cost_usd,
                attempts=len(record.attempts),
                upstream_model=answer.upstream_model,
                upstream_id=answer.upstream_id,
                finish_reason=answer.finish_reason if answer.complete else "",
            )
        if self._tracer.record_content and record.request_body is not None:
            # What the audit record keeps, so under the team's body policy: redacted, or not at all.
            body = record.request_body
            span.record_content(
                prompt=orjson.dumps(body.get("messages", body.get("inputs"))).decode(),
                answer=record.response_body or "",
            )
        span.end(error=error, status_code=record.status, reason=record.reason)

    def _observe_state(self, metrics: GatewayMetrics, call: Call[Any]) -> None:
        """The attempts, and the gauges a call can change: its targets' breakers, its route's queue, its team's
        budget."""
        plan, execution = call.plan, call.execution
        assert plan is not None
        route = plan.route
        if execution is not None:
            first = plan.candidates[0] if plan.candidates else None
            for attempt in execution.attempts:
                target = attempt.target
                metrics.observe_attempt(
                    route=route,
                    model=target.model.name,
                    provider=target.provider.name,
                    retry=attempt.retry,
                    fallback=target is not first,
                    outcome=attempt.outcome,
                    code=attempt.code,
                    duration_s=attempt.latency_ms / 1000,
                )
                state = self._board[target.key].breaker.state
                if self._breakers.get(target.key) is not state:  # a gauge write costs a lock: only on a change
                    self._breakers[target.key] = state
                    metrics.set_breaker_state(provider=target.provider.name, model=target.model.name, state=state.value)
        queue = self._queues.get(route)
        if queue is not None:
            metrics.set_queue_depth(route, queue.depth)
            if execution is not None and execution.waited_s:
                metrics.observe_queue_wait(route, execution.waited_s)
        if call.key is not None and self._budgets.governs(call.key):
            remaining = self._budgets.remaining(BudgetScope.TEAM, call.key.team)
            if remaining is not None:
                metrics.set_budget_remaining(call.key.team, remaining)


def _refused(call: Call[Any], edges: AnswerEdges | None) -> bool | None:
    """Whether the answer declined the request; None when there is no answer text to judge."""
    if edges is None or not call.answer.complete or not (edges.length or call.streaming):
        return None
    return edges.is_refusal()
