"""The path of a call: one ordered chain of stages, and the one lifecycle that runs it for unary, streamed and
embedding calls.

    async with pipeline.call(info, CallKind.CHAT, "Chat", model) as call:
        result = await call.complete(request)          # or: async for delta in call.stream(request)
    async with pipeline.call(info, CallKind.EMBED, "Embed", model) as call:
        vectors = await call.embed(request)

Stages enter in the order below and exit in reverse, so whatever a stage takes is given back on every path (a
refusal, a provider failure, a cancel, a bug). The first two see every call, even one whose request never parses;
the rest run once the request is known. Between admission and the end, the answer's chunks pass through the filters
the stages registered: a unary answer as one chunk, a stream chunk by chunk (serving.py). An embedding call runs its
own chain: the same stages where they read only the key and the metadata, its own adapters where they read the
request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from gateway.cache.service import ResponseCache
from gateway.chat import ChatDelta, ChatRequest, ChatResult
from gateway.config.routes import RouteConfig
from gateway.deferral.holder import Holder
from gateway.embeddings import Embedding, EmbedRequest
from gateway.ledger.audit import AuditLog
from gateway.ledger.budgets import BudgetBook
from gateway.observe.drift import DriftMonitor
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.spans import CallTracer
from gateway.pipeline.call import Call, CallInfo, CallKind, new_record
from gateway.pipeline.serving import Serving, ToolCalls, pass_chunk, tails
from gateway.pipeline.stage import BaseStage, Stage
from gateway.pipeline.stages.audit import KeepBodies, KeepEmbedBodies, WriteAudit
from gateway.pipeline.stages.budgets import DowngradeOnBudget
from gateway.pipeline.stages.cache import CacheAnswers, CacheEmbeddings
from gateway.pipeline.stages.guardrails import (
    EmbedInputGuardrails,
    InputGuardrails,
    OutputGuardrails,
    WatchAnomalies,
)
from gateway.pipeline.stages.identity import Authenticate, CheckAccess, CheckConditions
from gateway.pipeline.stages.limits import AdmitLimits
from gateway.pipeline.stages.observe import ObserveCall
from gateway.pipeline.stages.overload import ShedOverload
from gateway.pipeline.stages.routing import PlanEmbedRoute, PlanRoute
from gateway.pipeline.stages.shadow import Mirror, MirrorToShadow
from gateway.pipeline.stages.usage import SettleEmbedUsage, SettleUsage
from gateway.policy.keyring import KeyRing
from gateway.policy.team_policies import TeamPolicies
from gateway.records.governance import Team
from gateway.routing.catalog import ModelCatalog
from gateway.routing.health import HealthBoard
from gateway.routing.queue import WaitQueue
from gateway.routing.quotas import Quotas
from gateway.routing.router import Router
from gateway.state.admission import LocalLimits, SharedLimits
from gateway.tokens import TokenCounter

if TYPE_CHECKING:
    # numpy comes with it: imported only for a config with a learned route (server/app.py).
    from gateway.routing.learned import LearnedStrategy

log = logging.getLogger("gateway.pipeline")

_NOT_YET = ChatRequest("", [])
"""A call's request until `complete`, `stream` or `embed` gives the parsed one; no stage runs before then."""


@dataclass(frozen=True, slots=True)
class _Chain:
    """The stages a kind of call runs after the outer ones, and the hooks they really have (BaseStage's do nothing:
    a call runs only the others)."""

    stages: tuple[Stage, ...]
    ends: tuple[Stage, ...]
    exits: tuple[tuple[int, Stage], ...]
    """(position in the whole chain, outer stages first; stage)."""

    @classmethod
    def of(cls, outer: tuple[Stage, ...], stages: tuple[Stage | None, ...]) -> _Chain:
        kept = tuple(stage for stage in stages if stage is not None)
        whole = outer + kept
        return cls(
            kept,
            tuple(stage for stage in kept if type(stage).end is not BaseStage.end),
            tuple((index, stage) for index, stage in enumerate(whole) if type(stage).exit is not BaseStage.exit),
        )


class Pipeline:
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
        cache: ResponseCache,
        limits: LocalLimits | SharedLimits,
        quotas: Quotas,
        audit_enabled: bool = True,
        tracer: CallTracer | None = None,
        metrics: GatewayMetrics | None = None,
        drift: DriftMonitor | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = 10_000,
        learned: LearnedStrategy | None = None,
        shadow: Mirror | None = None,
        clock: Callable[[], float] = time.time,
        holder: Holder | None = None,
    ) -> None:
        """`learned`: the learned strategy and its profiles, when a route has strategy learned. `shadow`: what
        copies a share of the calls of routes with a shadow model. `clock`: the time (epoch seconds) at which a
        call's prices are read, when it is planned and when it is sent. `holder`: what holds calls that can wait
        (ChatRequest.defer_up_to_s) to send them together; None: they are sent at once."""
        self._catalog = catalog
        self._counter = counter
        self._audit = audit
        rng = rng or random.Random()
        self._queues = {route.name: WaitQueue(route.queue) for route in catalog.routes() if route.queue.max_size}
        observe = ObserveCall(tracer or CallTracer(None), metrics, drift, board, self._queues, budgets)
        self._serving = Serving(board, self._queues, quotas, observe, rng, clock, holder)
        router = Router(catalog, board, rng, learned)
        identity = (Authenticate(ring), CheckAccess())
        conditions, limits_stage = CheckConditions(), AdmitLimits(limits)
        self._overload = ShedOverload(max_in_flight)
        # The chain. Seen by every call (the bound on calls in flight comes after observe and audit, so a call it
        # refuses is counted and recorded like any other):
        self._outer: tuple[Stage, ...] = (observe, WriteAudit(audit), self._overload)
        # Then, once the request is known, in this order (stages a config can never use are left out). Chat:
        self._chat = _Chain.of(
            self._outer,
            (
                *identity,
                InputGuardrails(policies) if policies.has_input else None,
                conditions,
                WatchAnomalies(policies.anomalies) if policies.anomalies is not None else None,
                DowngradeOnBudget(budgets),
                PlanRoute(
                    router,
                    counter,
                    policies,
                    budgets,
                    learned.profiles if learned is not None else None,
                    cache,
                    clock=clock,
                ),
                limits_stage,
                SettleUsage(counter, cache.hit_cost_usd),
                CacheAnswers(cache, catalog),
                OutputGuardrails(policies) if policies.has_output else None,
                MirrorToShadow(shadow) if shadow is not None else None,
                KeepBodies(teams) if audit_enabled else None,
            ),
        )
        # Embed: no usage anomalies (a key's baselines are of its chat calls) and no budget downgrade (a cheaper
        # model's vectors would be of another space than the caller's index); nothing comes back to guard.
        self._embeddings = _Chain.of(
            self._outer,
            (
                *identity,
                EmbedInputGuardrails(policies) if policies.has_input else None,
                conditions,
                PlanEmbedRoute(router, counter, policies, budgets, clock=clock),
                limits_stage,
                SettleEmbedUsage(counter, cache.hit_cost_usd),
                CacheEmbeddings(cache, catalog, counter),
                KeepEmbedBodies(teams) if audit_enabled else None,
            ),
        )

    def call(self, info: CallInfo, kind: CallKind, method: str, model: str) -> CallScope:
        """A call that just arrived; `model` is what the caller asked for, as given (before any validation)."""
        chain = self._embeddings if kind is CallKind.EMBED else self._chat
        call: Call[Any] = Call(info, kind, method, _NOT_YET, new_record(info, kind, model))
        return CallScope(self, call, chain)

    # --- the lifecycle ---------------------------------------------------------------------------------------------

    async def _enter(self, call: Call[Any], stages: tuple[Stage, ...]) -> None:
        if call.span.recording:
            await self._enter_traced(call, stages)
            return
        for stage in stages:
            pending = stage.enter(call)
            if pending is not None:
                await pending
            call.entered += 1

    async def _enter_traced(self, call: Call[Any], stages: tuple[Stage, ...]) -> None:
        """As `_enter`, timing each stage for the trace: a stage that waited, or refused, gets a child span; the
        others (most) only their time, as an attribute of the call's span, with no object made for them."""
        span, clock = call.span, time.perf_counter_ns
        for stage in stages:
            started = clock()
            try:
                pending = stage.enter(call)
            except BaseException as error:
                span.stage_failed(stage.name, started, error)
                raise
            if pending is None:
                span.stage_time(stage.name, clock() - started)
            else:
                with span.stage(stage.name):
                    await pending
            call.entered += 1

    async def _end(self, call: Call[Any], chain: _Chain) -> None:
        """The whole answer came back: the stages' end hooks, then every exit."""
        answer = call.answer
        answer.complete = True
        answer.finish_reason = answer.finish_reason or "stop"
        for stage in chain.ends:
            pending = stage.end(call)
            if pending is not None:
                with call.span.stage(stage.name + ".end"):
                    await pending
        await self._exit(call, None, chain)

    async def _exit(self, call: Call[Any], error: BaseException | None, chain: _Chain) -> None:
        call.ended = True
        entered = call.entered
        for index, stage in reversed(chain.exits):
            if index >= entered:
                continue
            try:
                pending = stage.exit(call, error)
                if pending is not None:
                    await pending
            except Exception:  # one stage's bug must not keep the others from giving back what they took
                log.exception("stage %s failed on the way out of call %s", stage.name, call.request_id)

    # --- for the service objects -----------------------------------------------------------------------------------

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

    @property
    def in_flight(self) -> int:
        """Calls this process is serving now, against its bound (server.max_in_flight)."""
        return self._overload.in_flight

    def queue_depths(self) -> dict[str, int]:
        """Calls waiting now in this process, per route with a queue."""
        return {route: queue.depth for route, queue in self._queues.items()}


class CallScope:
    """One call's lifecycle: `async with` it, then `complete`, `stream` or `embed` the request inside. Whatever
    happens in the block, every stage that was entered exits, and the call's record is written."""

    __slots__ = ("_chain", "_pipeline", "call")

    def __init__(self, pipeline: Pipeline, call: Call[Any], chain: _Chain) -> None:
        self._pipeline = pipeline
        self._chain = chain
        self.call = call

    async def __aenter__(self) -> CallScope:
        try:
            await self._pipeline._enter(self.call, self._pipeline._outer)
        except BaseException as error:  # `async with` runs no __aexit__ after a failed __aenter__: exit here
            await self._pipeline._exit(self.call, error, self._chain)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.call.ended:
            await self._pipeline._exit(self.call, error, self._chain)

    async def complete(self, request: ChatRequest) -> ChatResult:
        """Admits and serves a unary call; returns the answer as the caller gets it, once its record is written."""
        pipeline, call = self._pipeline, self.call
        assert self._chain is pipeline._chat
        call.request = request
        await pipeline._enter(call, self._chain.stages)
        call.admitted = True
        delta = await pipeline._serving.unary(call)
        pass_chunk(call, delta)
        text, calls = delta.text, ToolCalls(delta.tool_calls)
        for tail in tails(call):
            text += tail.text
            calls.add(tail.tool_calls)
        await pipeline._end(call, self._chain)
        answer = call.answer
        return ChatResult(
            answer.upstream_id,
            answer.upstream_model,
            text,
            answer.finish_reason,
            answer.usage,
            calls.whole(),
            delta.logprobs,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        """Admits and serves a streamed call: its chunks as the caller gets them. When the last has been yielded,
        the call's record is written; the caller's final chunk reads `call.answer`."""
        pipeline, call = self._pipeline, self.call
        assert self._chain is pipeline._chat
        call.request = request
        await pipeline._enter(call, self._chain.stages)
        call.admitted = True
        async for delta in await pipeline._serving.open(call):
            pass_chunk(call, delta)
            if delta.text or delta.tool_calls or delta.logprobs:
                yield delta
        for tail in tails(call):
            yield tail
        await pipeline._end(call, self._chain)

    async def embed(self, request: EmbedRequest) -> list[Embedding]:
        """Admits and serves an embedding call; returns one vector per input, in order, once its record is written."""
        pipeline, call = self._pipeline, self.call
        assert self._chain is pipeline._embeddings
        call.request = request
        await pipeline._enter(call, self._chain.stages)
        call.admitted = True
        await pipeline._serving.embed(call)
        await pipeline._end(call, self._chain)
        return [found for found in call.embedded if found is not None]
