"""The path of a chat call, composed in one place: authenticate -> access -> guardrails in -> attribute conditions
-> anomalies -> budget downgrade -> route (residency) -> key limits -> budget reserve -> cache -> provider -> guardrails
out -> cache store -> settle -> audit.

Each stage is a small object with one job; later stages (guardrails, cache) slot in here, so the order of a call is
readable in this file alone.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc

from gateway.cache.entries import MISS, CacheEntry, CacheInfo
from gateway.cache.service import CacheHit, CachePlan, ResponseCache
from gateway.chat import ChatDelta, ChatRequest, ChatResult, ToolCall, ToolCallDelta, Usage
from gateway.config.routes import RouteConfig
from gateway.errors import GatewayError, InvalidRequest
from gateway.ledger.audit import AuditLog
from gateway.ledger.budgets import BudgetBook, Reservation
from gateway.ledger.cost import cost_usd
from gateway.ledger.records import AuditRecord
from gateway.observe.drift import DriftMonitor, route_rule_label
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.refusal import AnswerEdges, is_refusal
from gateway.observe.spans import CallSpan, CallTracer
from gateway.policy import access
from gateway.policy.classification import Classification
from gateway.policy.guardrails import OutputGuard
from gateway.policy.key_limits import KeyLimiter
from gateway.policy.keyring import KeyRing
from gateway.policy.pii import redact_text, scrub
from gateway.policy.records import BodyPolicy, BudgetScope, KeyRecord, Team
from gateway.policy.team_policies import TeamPolicies, action_records, allowed_targets
from gateway.routing.catalog import ModelCatalog, Target
from gateway.routing.executor import Attempt, Execution
from gateway.routing.features import RequestFeatures
from gateway.routing.health import HealthBoard
from gateway.routing.queue import Priority, WaitQueue
from gateway.routing.quotas import Quotas
from gateway.routing.router import RoutePlan, Router, fits
from gateway.routing.strategies import estimated_answer_tokens
from gateway.tokens import TokenCounter

CLASSIFICATION_METADATA = "x-data-classification"
CACHE_PROVIDER_LABEL = "cache"
"""The provider label of calls the response cache answered, in the request metrics."""
CACHED_CHUNK_CHARS = 64
"""A cached answer is streamed in pieces of about this many characters, cut after a space."""
_CLASSIFICATION_LABEL = "classification"


@dataclass(slots=True)
class CallInfo:
    """What the transport knows about a call."""

    metadata: Iterable[tuple[str, str | bytes]] | None
    deadline: float | None
    """time.monotonic() at which the caller gives up; None without a deadline."""
    peer: str = ""
    """The client's address as gRPC names it, e.g. 'ipv4:10.1.2.3:50122'."""


@dataclass(slots=True)
class CallState:
    """What the gateway keeps about a call from its arrival to its end: its audit record and its trace span."""

    record: AuditRecord
    span: CallSpan


@dataclass(slots=True)
class Admission:
    """A call that passed every check before the provider: the plan that will serve it and what it holds."""

    record: AuditRecord
    span: CallSpan
    key: KeyRecord
    features: RequestFeatures
    execution: Execution
    reserved_tokens: int
    reservation: Reservation | None
    bodies: BodyPolicy
    output: OutputGuard | None = None
    restore: dict[str, str] | None = None
    """Placeholder -> original of the input's redactions, put back in the answer when the policy says so."""
    served: Served | None = None
    streamed_text: list[str] = field(default_factory=list)
    first_chunk_s: float | None = None
    """A stream's time to first chunk, from the call's arrival."""
    answer_edges: AnswerEdges = field(default_factory=AnswerEdges)
    """The start and end of a streamed answer, kept as it passes: what the refusal scorer reads."""
    stream_target: Target | None = None
    """The target a stream opened on; with `streamed_tokens`, what a stream cut short is billed for."""
    streamed_tokens: int = 0
    """The answer's text as streamed, kept only when the team's audit policy stores bodies."""
    cache_plan: CachePlan | None = None
    cache: CacheInfo | None = None
    """Set once the cache was consulted: a hit, or MISS."""

    @property
    def request_id(self) -> str:
        return self.record.request_id

    @property
    def plan(self) -> RoutePlan:
        return self.execution.plan

    @property
    def attempts(self) -> list[Attempt]:
        return self.execution.attempts


@dataclass(slots=True)
class Served:
    admission: Admission
    target: Target
    result: ChatResult
    usage: Usage
    cost_usd: float


class ChatPipeline:
    def __init__(
        self,
        ring: KeyRing,
        catalog: ModelCatalog,
        counter: TokenCounter,
        board: HealthBoard,
        *,
        teams: dict[str, Team],
        budgets: BudgetBook,
        audit: AuditLog,
        policies: TeamPolicies,
        audit_enabled: bool = True,
        tracer: CallTracer | None = None,
        metrics: GatewayMetrics | None = None,
        drift: DriftMonitor | None = None,
        cache: ResponseCache | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._ring = ring
        self._catalog = catalog
        self._counter = counter
        self._board = board
        self._teams = teams
        self._budgets = budgets
        self._audit = audit
        self._audit_enabled = audit_enabled
        self._policies = policies
        self._tracer = tracer or CallTracer(None)
        self._metrics = metrics
        self._drift = drift
        self._cache = cache
        self._rng = rng or random.Random()
        self._router = Router(catalog, board, self._rng)
        self._queues = {route.name: WaitQueue(route.queue) for route in catalog.routes() if route.queue.max_size}
        self._quotas = Quotas()
        self._key_limits = KeyLimiter()

    def authenticate(self, call: CallInfo) -> KeyRecord:
        return self._ring.authenticate(call.metadata, call.peer)

    def start(self, call: CallInfo, kind: str, method: str, model: str) -> CallState:
        """A call that just arrived: its audit record and trace span; pass it to `admit` and `finish`."""
        now = time.time()
        record = AuditRecord(request_id(now), now, peer=call.peer, kind=kind, model=model)
        if self._metrics is not None:
            self._metrics.observe_call_started(kind)
        return CallState(record, self._tracer.start_call(method, call.metadata, request_id=record.request_id))

    def admit(self, request: ChatRequest, call: CallInfo, state: CallState, *, streaming: bool) -> Admission:
        record, span = state.record, state.span
        with span.stage("authenticate"):
            key = self._ring.authenticate(call.metadata, call.peer)
        record.key_id = key.id
        record.team = key.team
        span.set_identity(team=key.team, key_id=key.id)
        span.set_request(request, streaming=streaming)
        access.check_model(key, request.model)
        metadata = _metadata(call.metadata)
        classification = _classification(key, metadata)
        policy = self._policies.for_team(key.team)
        restore = None
        if policy.input is not None:
            with span.stage("guardrails.input"):
                outcome = policy.input.check(request, floor=classification)
            request = outcome.request
            classification = outcome.classification
            restore = outcome.restore_mapping
            if outcome.actions:
                record.guardrails.extend(action_records(outcome.actions))
        record.classification = classification.label
        if not key.conditions.empty:
            access.check_conditions(
                key, peer=call.peer, metadata=metadata, classification=classification, now=record.at
            )
        budgets = self._budgets
        governed = budgets.governs(key)
        if governed:
            cheaper = budgets.downgrade(key)
            if cheaper is not None and cheaper != request.model:
                record.guardrails.append({"type": "budget", "kind": "soft_cap", "action": "downgrade", "count": 1})
                request.model = cheaper
        counter = self._counter
        features = RequestFeatures(
            request,
            team=key.team,
            streaming=streaming,
            count_prompt=lambda model: counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens,
            prompt_bound=counter.upper_bound(request),
        )
        anomalies = self._policies.anomalies
        if anomalies is not None:
            verdict = anomalies.observe_request(key.id, features.prompt_bound)
            if verdict.actions:
                record.guardrails.extend(action_records(verdict.actions))
            verdict.enforce()
        with span.stage("route"):
            plan = self._router.plan(request.model, features)
            rule = policy.residency_rule(classification)
            if rule is not None:
                plan.candidates = allowed_targets(
                    plan.candidates, rule, requested=request.model, team=key.team, classification=classification
                )
        record.route = plan.route
        span.set_route(plan.route or request.model)
        reserved_tokens = 0
        reservation = None
        if governed or key.limits.tpm is not None:
            reserved_tokens, estimate = _estimate(plan, features, request.max_tokens)
            if not key.limits.empty:
                self._key_limits.admit(key, reserved_tokens)
            if governed:
                try:
                    reservation = budgets.reserve(key, estimate)
                except GatewayError:
                    self._key_limits.release(key, reserved_tokens, 0)
                    raise
        elif not key.limits.empty:
            self._key_limits.admit(key, 0)
        execution = Execution(
            plan,
            request,
            record.request_id,
            call.deadline,
            self._board,
            self._queues.get(plan.route),
            Priority.BATCH if request.batch else Priority.INTERACTIVE,
            self._rng,
            fits=lambda target: fits(target, features),
            quotas=self._quotas,
            reserve_tokens=lambda target: (
                features.prompt_tokens(target.model) + estimated_answer_tokens(target.model, request.max_tokens)
            ),
            span=span,
        )
        team = self._teams.get(key.team)
        bodies = team.bodies if team is not None and self._audit_enabled else BodyPolicy.NONE
        if bodies is not BodyPolicy.NONE:
            record.request_body = _bodies(request, bodies)
        admission = Admission(
            record, span, key, features, execution, reserved_tokens, reservation, bodies, policy.output, restore
        )
        if self._cache is not None:
            # After the input guardrails and the budget downgrade: the fingerprint is of the request as it would go
            # to a provider (redacted, on its final model), so no entry holds what the guardrails took out.
            choice = plan.candidates[0].model.name if plan.candidates else ""
            admission.cache_plan = self._cache.plan(request, key.team, choice, classification=classification)
        return admission

    async def chat(self, admission: Admission) -> Served:
        hit = await self._lookup(admission)
        if hit is not None:
            target, entry = hit
            result = entry.result()
            served = self._served_from_cache(admission, target, entry, result)
        else:
            target, result = await admission.execution.unary()
            usage = self._settle_usage(admission, target, result.usage, completion_text=result.text)
            served = Served(admission, target, result, usage, cost_usd(usage, target.model))
        admission.served = served
        # The provider's answer as it came, stored only once the output guardrails let it through; they run again
        # on every hit, with that caller's own placeholders restored.
        raw = dataclasses.replace(result) if hit is None and _stores(admission) else None
        if admission.output is not None:
            checked = admission.output.check_result(result, mapping=admission.restore)
            if checked.actions:
                admission.record.guardrails.extend(action_records(checked.actions))
        if admission.bodies is not BodyPolicy.NONE:
            admission.record.response_body = _body_text(result.text, admission.bodies)
        if raw is not None:
            await self._store(admission, raw, served)
        return served

    async def stream(self, admission: Admission) -> AsyncIterator[ChatDelta | Served]:
        """The first item is the serving Target's first delta; then deltas as they arrive; then one Served."""
        hit = await self._lookup(admission)
        if hit is not None:
            target, entry = hit
            deltas: AsyncIterator[ChatDelta] = _cached_deltas(entry)
        else:
            execution = admission.execution
            opened = await execution.open_stream()
            target = opened.target
            deltas = execution.rest_of_stream(opened)
        admission.stream_target = target
        admission.span.first_chunk()
        admission.first_chunk_s = time.time() - admission.record.at
        if self._metrics is not None and hit is None:
            self._metrics.observe_first_chunk(
                route=admission.plan.route,
                model=target.model.name,
                provider=target.provider.name,
                seconds=admission.first_chunk_s,
            )
        keep_text = admission.bodies is not BodyPolicy.NONE
        guard = admission.output.stream(mapping=admission.restore) if admission.output is not None else None
        reported: Usage | None = None
        finish = ""
        upstream_model = ""
        completion_tokens = 0
        # What the provider sent, kept for the cache until it proves too large.
        raw = (
            _StreamedAnswer(self._cache.max_entry_chars)
            if hit is None and self._cache is not None and _stores(admission)
            else None
        )
        async for delta in deltas:
            if raw is not None and not raw.keep(delta):
                raw = None
            if delta.usage is not None:
                reported = delta.usage
            if delta.finish_reason:
                finish = delta.finish_reason
            if delta.upstream_model:
                upstream_model = delta.upstream_model
            if delta.text:
                # Counted as it passes (nothing is buffered): the usage when a server sends none, and what a stream
                # cut short by a cancel, a deadline or a failure is billed for.
                completion_tokens += self._counter.count_text(
                    delta.text, target.model.upstream, target.model.tokenizer
                ).tokens
                admission.streamed_tokens = completion_tokens
            if guard is not None and delta.text:
                # Holds back at most the guard's window, so an item split across chunks is still caught.
                delta.text = guard.feed(delta.text)
            if keep_text and delta.text:
                admission.streamed_text.append(delta.text)
            if delta.text:
                admission.answer_edges.feed(delta.text)
            if delta.text or delta.tool_calls:
                yield delta
        if guard is not None:
            tail = guard.finish()
            if guard.actions:
                admission.record.guardrails.extend(action_records(guard.actions))
            if tail:
                if keep_text:
                    admission.streamed_text.append(tail)
                yield ChatDelta(text=tail)
        if hit is not None:
            served = self._served_from_cache(admission, target, entry, entry.result())
        else:
            usage = self._settle_usage(admission, target, reported, completion_tokens=completion_tokens)
            result = ChatResult("", upstream_model or target.model.upstream, "", finish or "stop", usage)
            served = Served(admission, target, result, usage, cost_usd(usage, target.model))
            if raw is not None:
                await self._store(admission, raw.result(result), served)
        admission.served = served
        if keep_text:
            admission.record.response_body = _body_text("".join(admission.streamed_text), admission.bodies)
        yield served

    async def _lookup(self, admission: Admission) -> tuple[Target, CacheEntry] | None:
        """The cached answer and the configured target that first gave it, or None to ask a provider."""
        plan = admission.cache_plan
        if plan is None or (not plan.read_exact and not plan.read_semantic):
            if plan is not None:
                admission.cache = MISS
            return None
        assert self._cache is not None
        span = admission.span
        with span.stage("cache.lookup"):
            hit: CacheHit | None = await self._cache.lookup(plan, wait=not admission.features.streaming)
        target = self._catalog.deployment(hit.entry.served_model, hit.entry.provider) if hit is not None else None
        if target is not None and target.model.name not in {c.model.name for c in admission.plan.candidates}:
            target = None
        if hit is None or target is None:
            # Served only by a model this call could have been routed to now (its route, rules and residency), and
            # only while the config still has it: nothing else could vouch for the entry.
            admission.cache = MISS
            span.set_cache(hit=False, kind="semantic" if plan.read_semantic else "exact")
            return None
        admission.cache = hit.info
        span.set_cache(hit=True, kind=hit.info.kind)
        record = admission.record
        record.cache = hit.info.audit()
        record.cache_saved_usd = max(0.0, hit.entry.cost_usd - self._cache.hit_cost_usd)
        return target, hit.entry

    def _served_from_cache(self, admission: Admission, target: Target, entry: CacheEntry, result: ChatResult) -> Served:
        stored = entry.usage
        # Reported as cached: the caller sees the answer's size, and that none of it came from a provider now.
        usage = Usage(stored.prompt_tokens, stored.completion_tokens, cached_prompt_tokens=stored.prompt_tokens)
        return Served(admission, target, result, usage, self._cache.hit_cost_usd if self._cache is not None else 0.0)

    async def _store(self, admission: Admission, raw: ChatResult, served: Served) -> None:
        plan = admission.cache_plan
        assert plan is not None
        assert self._cache is not None
        target = served.target
        with admission.span.stage("cache.store"):
            await self._cache.store(
                plan,
                raw,
                served.usage,
                served_model=target.model.name,
                provider=target.provider.name,
                cost_usd=served.cost_usd,
            )

    async def finish(self, state: CallState, admission: Admission | None, error: BaseException | None) -> None:
        """Ends a call, whatever happened: settles its limits and budget, writes its audit record (in strict mode,
        returns once the record is committed), ends its trace and counts it in the metrics."""
        record = state.record
        record.latency_ms = (time.time() - record.at) * 1000
        if admission is not None:
            if admission.cache_plan is not None and self._cache is not None:
                self._cache.release(admission.cache_plan)
            self._settle(record, admission)
            anomalies = self._policies.anomalies
            if anomalies is not None:
                verdict = anomalies.observe_answer(admission.key.id, record.completion_tokens, error=error is not None)
                if verdict.actions:
                    record.guardrails.extend(action_records(verdict.actions))
        if error is not None:
            _record_error(record, error)
        if self._audit.strict:
            await self._audit.commit(record)
        else:
            self._audit.submit(record)
        self._observe(state, admission, error)

    def _observe(self, state: CallState, admission: Admission | None, error: BaseException | None) -> None:
        record, span = state.record, state.span
        served = admission.served if admission is not None else None
        if record.guardrails:
            span.set_guardrails(record.guardrails)
        if record.provider:
            span.set_result(
                provider=record.provider,
                model=record.served_model,
                result=served.result if served is not None else None,
                usage=served.usage if served is not None else None,
                cost_usd=record.cost_usd,
                attempts=len(record.attempts),
            )
        span.end(error=error, status_code=record.status, reason=record.reason)
        if self._drift is not None and record.provider and record.cache is None:
            self._drift.observe_record(
                record,
                ttfc_s=admission.first_chunk_s if admission is not None else None,
                finish_reason=served.result.finish_reason if served is not None else "",
                refused=_refused(admission),
                route_rule=route_rule_label(record.route, admission.plan.rule if admission is not None else None),
            )
        metrics = self._metrics
        if metrics is None:
            return
        metrics.observe_call(
            kind=record.kind,
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
        if admission is not None:
            self._observe_state(metrics, admission)
            first = admission.plan.candidates[0] if admission.plan.candidates else None
            for attempt in admission.attempts:
                metrics.observe_attempt(
                    route=record.route,
                    model=attempt.target.model.name,
                    provider=attempt.target.provider.name,
                    retry=attempt.retry,
                    fallback=attempt.target is not first,
                    outcome=attempt.outcome,
                    code=attempt.code,
                    duration_s=attempt.latency_ms / 1000,
                )
        if record.guardrails:
            metrics.observe_guardrails(record.guardrails)
        if record.cache_saved_usd:
            metrics.observe_cache_saved(model=record.served_model, usd=record.cache_saved_usd)

    def _settle(self, record: AuditRecord, admission: Admission) -> None:
        served = admission.served
        key = admission.key
        target = served.target if served is not None else admission.stream_target
        used_tokens = 0
        if target is not None:
            if served is not None:
                usage, cost = served.usage, served.cost_usd
            elif record.cache is not None:
                # A stream from the cache cut short: no provider was called, the hit costs what any hit does.
                usage = Usage()
                cost = self._cache.hit_cost_usd if self._cache is not None else 0.0
            else:
                # A stream cut short: the prompt and the answer's tokens that went out, as the gateway counted them.
                usage = Usage(admission.features.prompt_tokens(target.model), admission.streamed_tokens)
                cost = cost_usd(usage, target.model)
            record.served_model = target.model.name
            record.provider = target.provider.name
            record.prompt_tokens = usage.prompt_tokens
            record.completion_tokens = usage.completion_tokens
            record.cached_tokens = usage.cached_prompt_tokens
            record.cost_usd = cost
            used_tokens = 0 if record.cache is not None else usage.total_tokens
        attempts = admission.attempts
        if attempts:
            record.attempts = [
                {
                    "model": a.target.model.name,
                    "provider": a.target.provider.name,
                    "outcome": a.outcome,
                    "code": a.code,
                    "reason": a.reason,
                    "latency_ms": a.latency_ms,
                    "retry": a.retry,
                    "hedged": a.hedged,
                }
                for a in attempts
            ]
        if not key.limits.empty:
            self._key_limits.release(key, admission.reserved_tokens, used_tokens)
        self._budgets.settle(admission.reservation, record.cost_usd)

    def _settle_usage(
        self,
        admission: Admission,
        target: Target,
        reported: Usage | None,
        *,
        completion_text: str = "",
        completion_tokens: int = 0,
    ) -> Usage:
        """The provider's own numbers when it reports them (and they teach the estimator); else the gateway's count."""
        model = target.model
        if reported is not None:
            if reported.prompt_tokens and not self._counter.is_exact(model.upstream, model.tokenizer):
                counted = admission.features.prompt_tokens(model)
                self._counter.observe_usage(model.upstream, counted, reported.prompt_tokens)
            return reported
        counted_prompt = admission.features.prompt_tokens(model)
        if completion_text:
            completion_tokens = self._counter.count_text(completion_text, model.upstream, model.tokenizer).tokens
        return Usage(counted_prompt, completion_tokens)

    def _observe_state(self, metrics: GatewayMetrics, admission: Admission) -> None:
        """The gauges a call can change: its targets' breakers, its route's queue, its team's budget."""
        for attempt in admission.attempts:
            target = attempt.target
            state = self._board[target.key].breaker.state
            metrics.set_breaker_state(provider=target.provider.name, model=target.model.name, state=state.value)
        route = admission.plan.route
        queue = self._queues.get(route)
        if queue is not None:
            metrics.set_queue_depth(route, queue.depth)
            if admission.execution.waited_s:
                metrics.observe_queue_wait(route, admission.execution.waited_s)
        if admission.reservation is not None:
            remaining = self._budgets.remaining(BudgetScope.TEAM, admission.key.team)
            if remaining is not None:
                metrics.set_budget_remaining(admission.key.team, remaining)

    async def flush_audit(self) -> None:
        """Returns once every audit record submitted so far is committed."""
        await self._audit.flush()

    def catalog(self) -> ModelCatalog:
        return self._catalog

    def routes(self) -> list[RouteConfig]:
        return self._catalog.routes()

    @property
    def counter(self) -> TokenCounter:
        return self._counter


class _StreamedAnswer:
    """A streamed answer put back together for the cache: its text, and its tool calls from their fragments (an id
    and a name first, then the arguments in pieces, each call by its index)."""

    def __init__(self, limit_chars: int) -> None:
        self._limit = limit_chars
        self._chars = 0
        self._text: list[str] = []
        self._calls: dict[int, tuple[str, str, list[str]]] = {}

    def keep(self, delta: ChatDelta) -> bool:
        """Adds a delta; False once the answer is larger than a cache entry may be, or when a fragment names
        another call than its index already holds (a server that leaves out the index): not stored, never merged."""
        if delta.text:
            self._text.append(delta.text)
            self._chars += len(delta.text)
        for part in delta.tool_calls:
            call_id, name, arguments = self._calls.get(part.index) or ("", "", [])
            if (part.id and call_id and part.id != call_id) or (part.name and name and part.name != name):
                return False
            arguments.append(part.arguments_delta)
            self._calls[part.index] = (call_id or part.id, name or part.name, arguments)
            self._chars += len(part.arguments_delta)
        return self._chars <= self._limit

    def result(self, ended: ChatResult) -> ChatResult:
        calls = [ToolCall(i, n, "".join(a)) for _, (i, n, a) in sorted(self._calls.items())]
        return dataclasses.replace(ended, text="".join(self._text), tool_calls=calls)


def _stores(admission: Admission) -> bool:
    """Whether this call's answer may go into the cache (a READ_ONLY call's never does: nothing to keep for it)."""
    return admission.cache_plan is not None and admission.cache_plan.write


async def _cached_deltas(entry: CacheEntry) -> AsyncIterator[ChatDelta]:
    """A stored answer as a stream: text in pieces cut at spaces, its tool calls, then the end."""
    text = entry.text
    start = 0
    while start < len(text):
        end = text.find(" ", start + CACHED_CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield ChatDelta(text=text[start:end])
        start = end
    if entry.tool_calls:
        yield ChatDelta(
            tool_calls=[
                ToolCallDelta(i, call.id, call.name, call.arguments_json) for i, call in enumerate(entry.tool_calls)
            ]
        )
    yield ChatDelta(finish_reason=entry.finish_reason, usage=entry.usage, upstream_model=entry.upstream_model)


def request_id(now: float) -> str:
    """24 hex digits: the millisecond, then 48 random bits. Ids that grow with time append to the audit log's index
    instead of landing on a random page of it, which made each batch's commit rewrite a page per record.

    The bits come from `random`'s generator (seeded from the OS at start and again in a forked child), not from
    os.urandom: an id needs to be unique, not secret, and os.urandom's system call lets go of the GIL, which a gRPC
    thread then holds while the call waits (about 20 µs a call, measured with benches/pipeline_cpu.py)."""
    return f"{int(now * 1000):012x}{random.getrandbits(48):012x}"


def deadline_from(remaining: float | None) -> float | None:
    return None if remaining is None else time.monotonic() + remaining


def _metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    return {name: value for name, value in metadata or () if isinstance(value, str)}


def _classification(key: KeyRecord, metadata: dict[str, str]) -> Classification:
    """The request's classification: what the caller declares, raised to the floor its key's labels set."""
    level = Classification.PUBLIC
    declared = metadata.get(CLASSIFICATION_METADATA)
    if declared:
        try:
            level = Classification.parse(declared)
        except ValueError as err:
            raise InvalidRequest(f"metadata {CLASSIFICATION_METADATA}: {err}", reason="BAD_CLASSIFICATION") from None
    floor = key.labels.get(_CLASSIFICATION_LABEL) if key.labels else None
    if floor:
        level = max(level, Classification.parse(floor))
    return level


def _estimate(plan: RoutePlan, features: RequestFeatures, max_tokens: int | None) -> tuple[int, float]:
    """Tokens and cost to reserve: the counted prompt plus max_tokens (the model's output limit when unset), priced
    at the dearest candidate, so the real cost settles at or under it."""
    tokens = 0
    cost = 0.0
    for target in plan.candidates:
        model = target.model
        prompt = features.prompt_tokens(model)
        answer = max_tokens if max_tokens is not None else model.max_output_tokens
        tokens = max(tokens, prompt + answer)
        cost = max(cost, (prompt * model.input_cost_per_mtok + answer * model.output_cost_per_mtok) / 1e6)
    return tokens, cost


def _refused(admission: Admission | None) -> bool | None:
    """Whether the answer declined the request; None when there is no answer text to judge."""
    if admission is None or admission.served is None:
        return None
    text = admission.served.result.text
    if text:
        return is_refusal(text)
    return admission.answer_edges.is_refusal() if admission.stream_target is not None else None


def _record_error(record: AuditRecord, error: BaseException) -> None:
    if isinstance(error, GatewayError):
        record.status = error.code.name
        record.reason = error.reason
        record.error = scrub(error.message)
    elif isinstance(error, Exception):
        record.status = grpc.StatusCode.INTERNAL.name
        record.reason = "INTERNAL"
        record.error = type(error).__name__
    else:
        record.status = grpc.StatusCode.CANCELLED.name
        record.reason = "CANCELLED"


def _bodies(request: ChatRequest, policy: BodyPolicy) -> dict[str, Any]:
    """The request as the audit record keeps it: its messages' text (redacted under that policy) and the parameters
    that change the answer, enough for Insights.Replay to send it again."""
    messages = []
    for m in request.messages:
        message: dict[str, Any] = {"role": m.role, "content": _body_text(m.text(), policy)}
        if m.name:
            message["name"] = m.name
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": t.id, "name": t.name, "arguments": _body_text(t.arguments_json, policy)} for t in m.tool_calls
            ]
        messages.append(message)
    parameters: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_tokens", request.max_tokens),
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("seed", request.seed),
            ("stop", request.stop or None),
            ("tool_choice", request.tool_choice or None),
        )
        if value is not None
    }
    if request.tools:
        parameters["tools"] = [
            {"name": t.name, "description": t.description, "parameters": t.parameters} for t in request.tools
        ]
    return {"messages": messages, "parameters": parameters}


def _body_text(text: str, policy: BodyPolicy) -> str:
    return redact_text(text) if policy is BodyPolicy.REDACTED else text
