"""Which targets may serve the call, in what order: the route's strategy over the candidates that fit the request,
narrowed to those the team's residency rule allows for this data."""

from __future__ import annotations

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

    def __init__(self, router: Router, counter: TokenCounter, policies: TeamPolicies, budgets: BudgetBook) -> None:
        self._router = router
        self._counter = counter
        self._policies = policies
        self._budgets = budgets

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
        plan = self._router.plan(request.model, features)
        rule = self._policies.for_team(key.team).residency_rule(call.classification)
        if rule is not None:
            plan.candidates = allowed_targets(
                plan.candidates, rule, requested=request.model, team=key.team, classification=call.classification
            )
        call.features = features
        call.plan = plan
        call.record.route = plan.route
        call.span.set_route(plan.route or request.model)
        if key.limits.tpm is not None or self._budgets.governs(key):
            call.estimate = estimate(
                (target.model for target in plan.candidates), features.prompt_tokens, request.max_tokens
            )
