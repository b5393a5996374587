"""`EvaluatePolicy`: what a learned route's strategy, as it stands now, and each of its targets alone would have
earned on the calls the route logged with feedback, against what ran (learning/evaluation.py estimates)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.config.learning import FeedbackConfig
from gateway.config.routes import RouteConfig
from gateway.errors import FailedPrecondition, NotFound
from gateway.learning.evaluation import LoggedCall, Policy, PolicyValue, Weights, evaluate
from gateway.learning.ratings import quality
from gateway.ledger.audit import AuditLog
from gateway.records.governance import KeyRecord, Role
from gateway.store.feedback import FeedbackStore, RatedCall

if TYPE_CHECKING:  # numpy comes with it: imported only for a config with a learned route (server/app.py)
    from gateway.routing.learned import LearnedStrategy

LOGGED = "logged"
"""The policy that ran: the route's decisions as logged."""
LEARNED = "learned"
"""The route's strategy on today's profiles."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    route: str
    rated_calls: int
    policies: list[PolicyValue]
    """What ran, the learned strategy now, then each target alone in configured order."""


class PolicyEvaluator:
    def __init__(
        self,
        routes: list[RouteConfig],
        metrics: FeedbackConfig,
        store: FeedbackStore,
        audit: AuditLog,
        strategy: LearnedStrategy | None,
        *,
        audit_enabled: bool,
    ) -> None:
        """`strategy`: the learned strategy over the shared profiles, a seeded instance of its own (the estimate runs
        in a thread, apart from the router's generator); None without learned routes."""
        self._audit_enabled = audit_enabled
        self._routes = {r.name: r for r in routes if r.learned is not None}
        self._metrics = metrics
        self._store = store
        self._audit = audit
        self._strategy = strategy

    async def evaluate(self, caller: KeyRecord, route_name: str, since: float, until: float) -> Evaluation:
        """A team admin's evaluation reads only their team's calls."""
        route = self._routes.get(route_name)
        if route is None or route.learned is None:
            known = ", ".join(sorted(self._routes)) or "none"
            raise NotFound(f"no learned route {route_name!r}; learned routes: {known}", reason="UNKNOWN_ROUTE")
        if not self._audit_enabled:
            raise FailedPrecondition(
                "offline evaluation reads the audit log, which is off (audit.enabled)", reason="AUDIT_OFF"
            )
        team = None if caller.role is Role.ADMIN else caller.team
        metric = self._metrics.metric(route.learned.quality)
        if metric is None:
            raise FailedPrecondition(f"route {route_name!r}: its quality metric is not declared", reason="NO_METRIC")
        await self._audit.flush()
        rated = await self._store.rated_calls(route_name, metric.name, since, until, team)
        # A pick the log gives no positive probability cannot be weighted (a record from before propensities were
        # logged, or edited): left out.
        calls = [c for c in (_logged(call, quality(metric, call.value)) for call in rated) if c.propensity > 0]
        weights = Weights(route.learned.cost_weight, route.learned.latency_weight)
        policies = await asyncio.to_thread(self._policies, route, calls, weights)
        return Evaluation(route_name, len(calls), policies)

    def _policies(self, route: RouteConfig, calls: list[LoggedCall], weights: Weights) -> list[PolicyValue]:
        strategy = self._strategy
        assert strategy is not None  # there is a learned route
        cache: dict[tuple[str, tuple[str, ...], int], Mapping[str, float]] = {}

        def learned(call: LoggedCall) -> Mapping[str, float]:
            eligible = tuple(call.propensities)
            key = (call.query_type, eligible, call.prompt_tokens)
            found = cache.get(key)
            if found is None:
                _, odds = strategy.decide(route, call.query_type, list(eligible), key[2], None)
                found = cache[key] = odds.probabilities
            return found

        def logged(call: LoggedCall) -> Mapping[str, float]:
            return call.propensities

        values = [evaluate(LOGGED, logged, calls, weights), evaluate(LEARNED, learned, calls, weights)]
        values += [evaluate(t.model, _always(t.model), calls, weights) for t in route.targets]
        return values


def _always(model: str) -> Policy:
    picks = {model: 1.0}
    return lambda _call: picks


def _logged(call: RatedCall, scaled: float) -> LoggedCall:
    decision = call.learned
    propensities = {str(arm): float(p) for arm, p in dict(decision["probabilities"]).items()}
    return LoggedCall(
        query_type=str(decision["query_type"]),
        arm=str(decision["model"]),
        propensities=propensities,
        quality=scaled,
        cost_usd=call.cost_usd,
        latency_s=call.latency_ms / 1000,
        prompt_tokens=call.prompt_tokens,
    )
