"""Which targets may serve the call, in what order: the route's strategy over the candidates that fit the request,
narrowed to those the team's residency rule allows for this data. A learned route's calls, once over, go into its
profiles."""

from __future__ import annotations

import time

from gateway.learning.profiles import ProfileBook
from gateway.ledger.budgets import BudgetBook
from gateway.ledger.cost import estimate
from gateway.pipeline.call import Call
from gateway.pipeline.stage import BaseStage
from gateway.policy.team_policies import TeamPolicies, allowed_targets
from gateway.routing.features import RequestFeatures
from gateway.routing.router import Router
from gateway.tokens import TokenCounter


class PlanRoute(BaseStage):
    name = "route"

    def __init__(
        self,
        router: Router,
        counter: TokenCounter,
        policies: TeamPolicies,
        budgets: BudgetBook,
        profiles: ProfileBook | None = None,
    ) -> None:
        self._router = router
        self._counter = counter
        self._policies = policies
        self._budgets = budgets
        self._profiles = profiles

    def enter(self, call: Call) -> None:
        key = call.key
        assert key is not None
        request = call.request
        counter = self._counter
        features = RequestFeatures(
            request,
            team=key.team,
            streaming=call.streaming,
            count_prompt=lambda model: counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens,
            prompt_bound=counter.upper_bound(request),
        )
        rule = self._policies.for_team(key.team).residency_rule(call.classification)
        allowed = (
            (lambda t: rule.allows(t.provider.config.region, t.provider.config.compliance))
            if rule is not None
            else None
        )
        plan = self._router.plan(request.model, features, allowed)
        if rule is not None:
            plan.candidates = allowed_targets(
                plan.candidates, rule, requested=request.model, team=key.team, classification=call.classification
            )
        call.features = features
        call.plan = plan
        call.record.route = plan.route
        if plan.learned is not None:
            call.record.learned = plan.learned.record()
        call.span.set_route(plan.route or request.model)
        if key.limits.tpm is not None or self._budgets.governs(key):
            call.estimate = estimate(
                (target.model for target in plan.candidates), features.prompt_tokens, request.max_tokens
            )

    def exit(self, call: Call, error: BaseException | None) -> None:
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
        self._profiles.observe_call(
            (plan.route, plan.learned.query_type, model),
            call.record.at,
            ok=ok,
            latency_s=time.time() - call.record.at,
            cost_usd=answer.cost_usd,
            answer_tokens=answer.usage.completion_tokens if answer.usage is not None else 0,
        )
