"""The path of a chat call, composed in one place: authenticate -> validate -> route -> provider -> account.

Each stage is a small object with one job; later stages (guardrails, cache, budgets, audit) slot in here, so the
order of a call is readable in this file alone.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from gateway.chat import ChatDelta, ChatRequest, ChatResult, Usage
from gateway.config.routes import RouteConfig
from gateway.ledger.cost import cost_usd
from gateway.policy.auth import Authenticator, Identity
from gateway.routing.catalog import ModelCatalog, Target
from gateway.routing.executor import Attempt, Execution
from gateway.routing.features import RequestFeatures
from gateway.routing.health import HealthBoard
from gateway.routing.queue import Priority, WaitQueue
from gateway.routing.quotas import Quotas
from gateway.routing.router import RoutePlan, Router, fits
from gateway.routing.strategies import estimated_answer_tokens
from gateway.tokens import TokenCounter


@dataclass(slots=True)
class CallInfo:
    """What the transport knows about a call."""

    metadata: Iterable[tuple[str, str | bytes]] | None
    deadline: float | None
    """time.monotonic() at which the caller gives up; None without a deadline."""


@dataclass(slots=True)
class Admission:
    """A call that passed every check before the provider: the plan that will serve it and what it was planned on."""

    request_id: str
    features: RequestFeatures
    execution: Execution

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
        authenticator: Authenticator,
        catalog: ModelCatalog,
        counter: TokenCounter,
        board: HealthBoard,
        rng: random.Random | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._catalog = catalog
        self._counter = counter
        self._board = board
        self._rng = rng or random.Random()
        self._router = Router(catalog, board, self._rng)
        self._queues = {route.name: WaitQueue(route.queue) for route in catalog.routes() if route.queue.max_size}
        self._quotas = Quotas()

    def authenticate(self, call: CallInfo) -> Identity:
        return self._authenticator.authenticate(call.metadata)

    def admit(self, request: ChatRequest, call: CallInfo, *, streaming: bool) -> Admission:
        identity = self._authenticator.authenticate(call.metadata)
        identity.check_model(request.model)
        counter = self._counter
        features = RequestFeatures(
            request,
            team=identity.team,
            streaming=streaming,
            count_prompt=lambda model: counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens,
            prompt_bound=counter.upper_bound(request),
        )
        plan = self._router.plan(request.model, features)
        request_id = secrets.token_hex(12)
        execution = Execution(
            plan,
            request,
            request_id,
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
        )
        return Admission(request_id, features, execution)

    async def chat(self, admission: Admission) -> Served:
        target, result = await admission.execution.unary()
        usage = self._settle_usage(admission, target, result.usage, completion_text=result.text)
        return Served(admission, target, result, usage, cost_usd(usage, target.model))

    async def stream(self, admission: Admission) -> AsyncIterator[ChatDelta | Served]:
        """The first item is the serving Target's first delta; then deltas as they arrive; then one Served."""
        execution = admission.execution
        opened = await execution.open_stream()
        target = opened.target
        count_deltas = not target.provider.reports_stream_usage
        reported: Usage | None = None
        finish = ""
        upstream_model = ""
        completion_tokens = 0
        async for delta in execution.rest_of_stream(opened):
            if delta.usage is not None:
                reported = delta.usage
            if delta.finish_reason:
                finish = delta.finish_reason
            if delta.upstream_model:
                upstream_model = delta.upstream_model
            if count_deltas and delta.text and reported is None:
                # Counted as it passes, so usage exists when a server sends none; nothing is buffered.
                completion_tokens += self._counter.count_text(
                    delta.text, target.model.upstream, target.model.tokenizer
                ).tokens
            if delta.text or delta.tool_calls:
                yield delta
        usage = self._settle_usage(admission, target, reported, completion_tokens=completion_tokens)
        result = ChatResult("", upstream_model or target.model.upstream, "", finish or "stop", usage)
        yield Served(admission, target, result, usage, cost_usd(usage, target.model))

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

    def catalog(self) -> ModelCatalog:
        return self._catalog

    def routes(self) -> list[RouteConfig]:
        return self._catalog.routes()

    @property
    def counter(self) -> TokenCounter:
        return self._counter


def deadline_from(remaining: float | None) -> float | None:
    return None if remaining is None else time.monotonic() + remaining
