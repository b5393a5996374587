"""Which targets may serve the call, in what order: the route's strategy over the candidates that fit the request,
narrowed to those the team's residency rule allows for this data. A learned route's calls, once over, go into its
profiles (with whether the answer was a refusal)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from gateway.cache.service import ResponseCache
from gateway.chat import ChatRequest
from gateway.config.schema import ModelConfig, ModelKind
from gateway.learning.profiles import ProfileBook
from gateway.ledger.budgets import BudgetBook
from gateway.ledger.cost import estimate
from gateway.observe.refusal import AnswerEdges
from gateway.pipeline.call import Call, ChatCall, EmbedCall
from gateway.pipeline.stage import BaseStage
from gateway.policy.team_policies import TeamPolicies, allowed_targets
from gateway.routing.features import RequestFeatures, as_chat
from gateway.routing.router import Router
from gateway.tokens import TokenCounter


class _Route(BaseStage):
    name = "route"

    def __init__(
        self,
        router: Router,
        counter: TokenCounter,
        policies: TeamPolicies,
        budgets: BudgetBook,
        profiles: ProfileBook | None = None,
        cache: ResponseCache | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`cache`: embeds the prompt for a learned route typed by its embedding's cluster (chat calls). `clock`: the
        time at which the call's prices are read (epoch seconds)."""
        self._clock = clock
        self._router = router
        self._counter = counter
        self._policies = policies
        self._budgets = budgets
        self._profiles = profiles
        self._cache = cache

    def _plan(self, call: Call[Any], features: RequestFeatures, max_tokens: int | None) -> None:
        key = call.key
        assert key is not None
        requested = call.request.model
        rule = self._policies.for_team(key.team).residency_rule(call.classification)
        allowed = (
            (lambda t: rule.allows(t.provider.config.region, t.provider.config.compliance))
            if rule is not None
            else None
        )
        plan = self._router.plan(requested, features, allowed)
        if rule is not None:
            plan = replace(
                plan,
                candidates=allowed_targets(
                    plan.candidates, rule, requested=requested, team=key.team, classification=call.classification
                ),
            )
        call.features = features
        call.plan = plan
        call.record.route = plan.route
        if plan.learned is not None:
            call.record.learned = plan.learned.record()
            if call.answer.edges is None:
                call.answer.edges = AnswerEdges()  # for the profile's refusal rate
        call.span.set_route(plan.route or requested)
        if key.limits.tpm is not None or self._budgets.governs(key):
            at = features.at
            request = call.request
            # A call that may be held can run in any price window before its wait ends: the dearest bounds it.
            waits = isinstance(request, ChatRequest) and request.defer_up_to_s is not None
            call.estimate = estimate(
                (target.model for target in plan.candidates),
                features.prompt_tokens,
                max_tokens,
                (lambda model: model.schedule.ceiling()) if waits else (lambda model: model.schedule.at(at)),
            )

    def exit(self, call: Call[Any], error: BaseException | None) -> None:
        """A learned route's call, served by a provider (not the cache), or failed there, goes into its profile."""
        plan, answer = call.plan, call.answer
        if self._profiles is None or plan is None or plan.learned is None or answer.hit is not None:
            return
        execution = call.execution
        if answer.target is not None:
            model = answer.target.model.name
        elif execution is not None and execution.attempts:
            model = execution.attempts[-1].target.model.name
        else:
            return  # refused before any provider saw it: says nothing about a model
        ok = error is None and answer.complete
        edges = answer.edges
        self._profiles.observe_call(
            (plan.route, plan.learned.query_type, model),
            call.record.at,
            ok=ok,
            latency_s=time.time() - call.record.at,
            cost_usd=answer.cost_usd,
            answer_tokens=answer.usage.completion_tokens if answer.usage is not None else 0,
            refused=ok and edges is not None and edges.is_refusal(),
        )


class PlanRoute(_Route):
    def enter(self, call: ChatCall) -> Awaitable[None] | None:
        request = call.request
        counter = self._counter
        assert call.key is not None
        features = RequestFeatures(
            request,
            team=call.key.team,
            streaming=call.streaming,
            count_prompt=lambda model: counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens,
            prompt_bound=counter.upper_bound(request),
            at=self._clock(),
        )
        always = self._router.embedding_asked(request.model)
        if always is not None and self._cache is not None:
            return self._plan_embedded(call, features, self._cache, always=always)
        self._plan(call, features, request.max_tokens)
        return None

    async def _plan_embedded(
        self, call: ChatCall, features: RequestFeatures, cache: ResponseCache, *, always: bool
    ) -> None:
        assert call.key is not None
        vector = await cache.prompt_vector(
            call.request, call.key.team, classification=call.classification, always=always
        )
        self._plan(call, replace(features, prompt_vector=vector), call.request.max_tokens)


class PlanEmbedRoute(_Route):
    """The same router and residency rules, over embedding models only (a chat model does not fit an Embed call);
    the config has checked that every model a route reaches shares one embedding space, so any target's vectors are
    the same space's. Prompt tokens are the inputs' own, counted one by one (no chat framing). Built without
    profiles: the learned strategy's profiles score answers, and an embedding has none to score."""

    def enter(self, call: EmbedCall) -> None:
        request = call.request
        counter = self._counter
        assert call.key is not None

        def count(model: ModelConfig) -> int:
            return sum(counter.count_text(text, model.upstream, model.tokenizer).tokens for text in request.inputs)

        view = as_chat(request)
        features = RequestFeatures(
            view,
            team=call.key.team,
            streaming=False,
            count_prompt=count,
            prompt_bound=counter.upper_bound(view),
            kind=ModelKind.EMBEDDING,
            dimensions=request.dimensions,
            at=self._clock(),
        )
        self._plan(call, features, None)
