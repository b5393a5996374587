"""From the name a caller asked for to a RoutePlan: the ordered deployments to try and the rules to try them by."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.config.learning import QueryFeature
from gateway.config.routes import HedgeConfig, QueueConfig, RetryConfig, RouteConfig, Strategy, TimeoutConfig
from gateway.config.schema import ModelConfig, ModelKind
from gateway.errors import InvalidRequest
from gateway.routing import strategies
from gateway.routing.catalog import ModelCatalog, Target
from gateway.routing.features import RequestFeatures
from gateway.routing.health import BreakerState, HealthBoard

if TYPE_CHECKING:
    # numpy comes with it: imported only for a config with a learned route (server/app.py).
    from gateway.routing.learned import LearnedChoice, LearnedStrategy

_DIRECT_QUEUE = QueueConfig(max_size=0)
_DIRECT_TIMEOUTS = TimeoutConfig()


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """The route stage's decision: which targets a call tries and how. Frozen: later stages read it, none changes it."""

    route: str
    """The route asked for; empty when the caller named a model."""
    strategy: str
    reason: str
    candidates: list[Target]
    retries: RetryConfig
    timeouts: TimeoutConfig = field(default_factory=TimeoutConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    hedge: HedgeConfig | None = None
    rule: str = ""
    """For a rules route: the name of the first rule that matched, or "default"; empty otherwise."""
    learned: LearnedChoice | None = None
    """For a learned route: the query type, the estimates and the pick."""


class Router:
    def __init__(
        self,
        catalog: ModelCatalog,
        board: HealthBoard,
        rng: random.Random | None = None,
        learned: LearnedStrategy | None = None,
    ) -> None:
        """`learned`: needed when a route has strategy learned."""
        self._catalog = catalog
        self._board = board
        self._rng = rng or random.Random()
        self._learned = learned
        self._models: dict[str, ModelConfig] = {name: catalog.pool(name)[0].model for name in catalog.model_names()}
        self._pool_health = {name: [board[t.key] for t in catalog.pool(name)] for name in catalog.model_names()}
        # A model named directly fails over across its pool's deployments; a single deployment is tried once.
        self._direct_retries = {
            name: RetryConfig(max_attempts=len(catalog.pool(name)), backoff_ms=0) for name in catalog.model_names()
        }
        self._direct_reasons = {
            name: f"model {name} requested directly" + (f", pool of {n}" if (n := len(catalog.pool(name))) > 1 else "")
            for name in catalog.model_names()
        }
        self._rule_keywords = {
            route.name: frozenset(word.lower() for rule in route.rules for word in rule.when.keywords)
            for route in catalog.routes()
        }
        self._embedding_asks = {
            route.name: asks for route in catalog.routes() if (asks := self._asks_embedding(route)) is not None
        }

    def embedding_asked(self, name: str) -> bool | None:
        """Whether a call to `name` may reach a learned route typed by the cluster of the prompt's embedding: None
        if not; else whether that route embeds every call (`embed_always`) or only those the semantic cache does."""
        return self._embedding_asks.get(name)

    def _asks_embedding(self, route: RouteConfig) -> bool | None:
        learned = route.learned
        if learned is not None and QueryFeature.CLUSTER in learned.features:
            return learned.clusters.embed_always
        if route.strategy is not Strategy.RULES:
            return None
        # A rules route reaches the routes its rules and default name: the embedding is needed before the rules run.
        names = {rule.target for rule in route.rules} | ({route.default} if route.default else set())
        reached = [self._catalog.lookup(name) for name in sorted(names)]
        asks = [a for r in reached if isinstance(r, RouteConfig) and (a := self._asks_embedding(r)) is not None]
        return any(asks) if asks else None

    def plan(self, name: str, features: RequestFeatures, allowed: Callable[[Target], bool] | None = None) -> RoutePlan:
        """`allowed`: the targets the caller's policies (residency) let serve this call; a learned route chooses only
        among those, so that the choice it logs is the one that runs."""
        found = self._catalog.lookup(name)
        if isinstance(found, list):
            pool = found
            self._check_some_fit(pool, features)
            return RoutePlan(
                route="",
                strategy="model",
                reason=self._direct_reasons[name],
                candidates=self._by_load(pool),
                retries=self._direct_retries[name],
                timeouts=_DIRECT_TIMEOUTS,
                queue=_DIRECT_QUEUE,
            )
        return self._plan_route(found, features, reasons=[], allowed=allowed)

    def _plan_route(
        self,
        route: RouteConfig,
        features: RequestFeatures,
        reasons: list[str],
        rule: str = "",
        allowed: Callable[[Target], bool] | None = None,
    ) -> RoutePlan:
        learned: LearnedChoice | None = None
        if route.strategy is Strategy.RULES:
            target, matched, reason = self._rule_target(route, features)
            rule = rule or matched
            reasons.append(reason)
            found = self._catalog.lookup(target)
            if isinstance(found, RouteConfig):
                return self._plan_route(found, features, reasons, rule, allowed)
            order = [target]
        elif route.strategy is Strategy.FALLBACK:
            order, reason = strategies.fallback(route)
            reasons.append(reason)
        elif route.strategy is Strategy.WEIGHTED:
            order, reason = strategies.weighted(route, features, self._rng)
            reasons.append(reason)
        elif route.strategy is Strategy.LEARNED:
            assert self._learned is not None
            eligible = self._eligible(route, features, allowed) or [t.model for t in route.targets]
            order, reason, learned = self._learned.choose(route, features, rule, eligible)
            order += [t.model for t in route.targets if t.model not in order]
            reasons.append(reason)
        elif route.strategy is Strategy.LEAST_LATENCY:
            order, reason = strategies.least_latency(route, self._latencies(route, features.streaming), self._rng)
            reasons.append(reason)
        else:
            latencies = self._latencies(route, streaming=False) if route.max_latency_ms is not None else {}
            order, reason = strategies.cost(route, self._models, features, latencies)
            reasons.append(reason)
            if not order:
                raise InvalidRequest(
                    f"route {route.name!r}: no target meets its max_cost_usd/max_latency_ms for this request",
                    reason="NO_TARGET_WITHIN_LIMITS",
                )
        candidates: list[Target] = []
        for model in order:
            candidates.extend(self._by_load(self._catalog.pool(model)))
        return RoutePlan(
            route=route.name,
            strategy=route.strategy.value,
            reason="; ".join(reasons),
            candidates=self._check_some_fit(candidates, features),
            retries=route.retries,
            timeouts=route.timeouts,
            queue=route.queue,
            hedge=route.hedge,
            rule=rule,
            learned=learned,
        )

    def _eligible(
        self, route: RouteConfig, features: RequestFeatures, allowed: Callable[[Target], bool] | None
    ) -> list[str]:
        """The route's models with a deployment that fits the request, has no open breaker and the policies allow.
        When none has, the plan goes on with every target, so the call fails with the reason the executor or the
        residency filter gives."""
        models = []
        for target in route.targets:
            for deployment in self._catalog.pool(target.model):
                if (
                    (allowed is None or allowed(deployment))
                    and self._board[deployment.key].breaker.state is not BreakerState.OPEN
                    and fits(deployment, features)
                ):
                    models.append(target.model)
                    break
        return models

    def _rule_target(self, route: RouteConfig, features: RequestFeatures) -> tuple[str, str, str]:
        """The target, the rule that chose it ("default" when none matched) and the reason for the route report."""
        primary = self._catalog.primary(route.name).model
        tokens = features.prompt_tokens(primary)
        keywords = self._rule_keywords[route.name]
        found = strategies.keywords_in(keywords, features.prompt_text) if keywords else frozenset()
        for rule in route.rules:
            if strategies.matches(rule.when, features, tokens, found):
                return rule.target, rule.name, f"rule {rule.name!r} matched -> {rule.target}"
        assert route.default is not None
        return route.default, "default", f"no rule matched -> default {route.default}"

    def _latencies(self, route: RouteConfig, streaming: bool) -> dict[str, float | None]:
        """Per model, the best moving-average latency among its deployments (TTFT for streams, else total)."""
        result: dict[str, float | None] = {}
        for target in route.targets:
            best: float | None = None
            for health in self._pool_health[target.model]:
                value = health.ewma_ttft_s if streaming else health.ewma_total_s
                if value is not None and (best is None or value < best):
                    best = value
            result[target.model] = best
        return result

    def _by_load(self, pool: list[Target]) -> list[Target]:
        """Healthy before open, then the least loaded: a pool balances by current load and health."""
        if len(pool) == 1:
            return pool
        return sorted(
            pool,
            key=lambda t: (
                self._board[t.key].breaker.state is BreakerState.OPEN,
                self._board[t.key].cooling_for() > 0,
                self._board[t.key].in_flight,
            ),
        )

    @staticmethod
    def _check_some_fit(candidates: list[Target], features: RequestFeatures) -> list[Target]:
        """Raises the first candidate's reason when no candidate can serve the request. Checks stop at the first that
        fits: the executor skips later misfits only if it reaches them, so a plan costs O(1) checks, not O(targets)."""
        first_error: InvalidRequest | None = None
        for target in candidates:
            error = misfit(target, features)
            features.fit[target.key] = error is None
            if error is None:
                return candidates
            first_error = first_error or error
        assert first_error is not None
        raise first_error


def fits(target: Target, features: RequestFeatures) -> bool:
    known = features.fit.get(target.key)
    if known is None:
        known = features.fit[target.key] = misfit(target, features) is None
    return known


def misfit(target: Target, features: RequestFeatures) -> InvalidRequest | None:
    """Why the target cannot serve the request (kind, size, capabilities, parameters), or None when it can."""
    model = target.model
    if model.kind is not features.kind:
        if model.kind is ModelKind.EMBEDDING:
            what, call = "an embedding", "Embed (POST /v1/embeddings)"
        else:
            what, call = "a chat", "Chat or ChatStream (POST /v1/chat/completions)"
        return InvalidRequest(
            f"model {model.name!r} is {what} model: call it with {call}",
            reason="WRONG_MODEL_KIND",
            metadata={"model": model.name, "kind": model.kind.value},
        )
    if model.kind is ModelKind.EMBEDDING:
        if features.dimensions is not None and model.dimensions is not None and features.dimensions > model.dimensions:
            return InvalidRequest(
                f"dimensions {features.dimensions} exceeds model {model.name!r}'s {model.dimensions}",
                reason="DIMENSIONS_TOO_LARGE",
                metadata={"param": "dimensions"},
            )
        return None
    request = features.request
    if request.passthrough and not target.provider.accepts_passthrough:
        names = ", ".join(sorted(request.passthrough))
        return InvalidRequest(
            f"model {model.name!r} (provider {target.provider.name!r}, {target.provider.config.type.value}) does not "
            f"take the OpenAI parameter(s) {names}: only OpenAI-format providers do",
            reason="UNSUPPORTED_PARAMETER",
            metadata={"param": sorted(request.passthrough)[0]},
        )
    if request.max_tokens is not None and request.max_tokens > model.max_output_tokens:
        return InvalidRequest(
            f"max_tokens {request.max_tokens} exceeds model {model.name!r}'s limit of {model.max_output_tokens}",
            reason="MAX_TOKENS_TOO_LARGE",
        )
    if features.has_tools and "tools" not in model.capabilities:
        return InvalidRequest(f"model {model.name!r} does not support tools", reason="UNSUPPORTED_CAPABILITY")
    if features.has_images and "images" not in model.capabilities:
        return InvalidRequest(f"model {model.name!r} does not accept images", reason="UNSUPPORTED_CAPABILITY")
    if (
        request.response_format is not None
        and request.response_format.kind != "text"
        and ("json_mode" not in model.capabilities)
    ):
        return InvalidRequest(f"model {model.name!r} does not support JSON output", reason="UNSUPPORTED_CAPABILITY")
    reserved = request.max_tokens or 0
    if features.prompt_bound + reserved <= model.context_window:
        return None  # fits for sure: no need to tokenize here
    prompt = features.prompt_tokens(model)
    if prompt + reserved > model.context_window:
        return InvalidRequest(
            f"the prompt has {prompt} tokens and max_tokens asks for {reserved}, more than model "
            f"{model.name!r}'s context window of {model.context_window}: shorten the conversation",
            reason="CONTEXT_WINDOW_EXCEEDED",
            metadata={"prompt_tokens": str(prompt), "context_window": str(model.context_window)},
        )
    return None
