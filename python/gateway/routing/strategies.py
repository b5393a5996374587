"""Pure strategy logic: given a route and what is known of its targets, the order in which to try its models.

Each function returns model names, best first, and the reason for the choice as a caller will read it.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re

from gateway.config.routes import RouteConfig, RuleCondition
from gateway.config.schema import ModelConfig, ModelKind
from gateway.routing.features import RequestFeatures

# The cost strategy's guess of an answer's length when the caller sets no max_tokens.
NOMINAL_ANSWER_TOKENS = 256


def fallback(route: RouteConfig) -> tuple[list[str], str]:
    return [t.model for t in route.targets], "fallback: targets in configured order"


def weighted(route: RouteConfig, features: RequestFeatures, rng: random.Random) -> tuple[list[str], str]:
    arms = [t for t in route.targets if t.weight > 0]
    sticky = _sticky_value(route, features)
    if sticky is not None:
        # Rendezvous hashing weighted by -ln(u)/w: each key lands on an arm with probability proportional to its
        # weight, and changing one arm's weight moves only the keys that must move.
        def score(model: str, weight: float) -> float:
            digest = hashlib.blake2b(f"{sticky}\0{model}".encode(), digest_size=8).digest()
            unit = (int.from_bytes(digest, "big") + 0.5) / 2**64
            return -math.log(unit) / weight

        chosen = min(arms, key=lambda t: score(t.model, t.weight)).model
        reason = f"weighted, sticky by {route.sticky}"
    else:
        chosen = rng.choices([t.model for t in arms], weights=[t.weight for t in arms])[0]
        reason = "weighted: drawn by weight"
    rest = [t.model for t in sorted(route.targets, key=lambda t: -t.weight) if t.model != chosen]
    return [chosen, *rest], f"{reason} -> {chosen}"


def _sticky_value(route: RouteConfig, features: RequestFeatures) -> str | None:
    if route.sticky is None:
        return None
    if route.sticky == "user":
        return features.request.user or None
    return features.request.metadata.get(route.sticky.removeprefix("metadata:")) or None


def least_latency(route: RouteConfig, latency_s: dict[str, float | None], rng: random.Random) -> tuple[list[str], str]:
    """Lowest moving-average latency first. Targets never measured go first, and a share of calls (exploration)
    goes to another target, so that a target that recovered is noticed."""
    models = [t.model for t in route.targets]
    unmeasured = [m for m in models if latency_s.get(m) is None]
    measured = sorted((m for m in models if latency_s.get(m) is not None), key=lambda m: latency_s[m] or 0.0)
    ordered = unmeasured + measured
    if unmeasured:
        return ordered, f"least_latency: exploring unmeasured {unmeasured[0]}"
    if len(ordered) > 1 and rng.random() < route.exploration:
        explored = rng.choice(ordered[1:])
        return [explored, *(m for m in ordered if m != explored)], f"least_latency: exploring {explored}"
    best = ordered[0]
    return ordered, f"least_latency: {best} at {1000 * (latency_s[best] or 0):.1f} ms (EWMA)"


def estimated_answer_tokens(model: ModelConfig, max_tokens: int | None) -> int:
    """The answer length to plan for: the caller's max_tokens, else a nominal length (none for an embedding)."""
    if model.kind is ModelKind.EMBEDDING:
        return 0
    return max_tokens if max_tokens is not None else min(NOMINAL_ANSWER_TOKENS, model.max_output_tokens)


def estimated_cost_usd(model: ModelConfig, prompt_tokens: int, max_tokens: int | None, at: float) -> float:
    """At the prices in force at `at` (epoch seconds)."""
    answer = estimated_answer_tokens(model, max_tokens)
    prices = model.schedule.at(at)
    return (prompt_tokens * prices.input_per_mtok + answer * prices.output_per_mtok) / 1e6


def cost(
    route: RouteConfig, models: dict[str, ModelConfig], features: RequestFeatures, latency_s: dict[str, float | None]
) -> tuple[list[str], str]:
    """Cheapest estimate first, at the prices in force when the call runs, among targets within the route's cost and
    latency limits (fit and capabilities are checked for every strategy by the router)."""
    estimates: list[tuple[float, str]] = []
    max_tokens = features.request.max_tokens
    max_cost = route.max_cost_usd
    max_latency_s = route.max_latency_ms / 1000 if route.max_latency_ms is not None else None
    for target in route.targets:
        model = models[target.model]
        estimate = estimated_cost_usd(model, features.prompt_tokens(model), max_tokens, features.at)
        if max_cost is not None and estimate > max_cost:
            continue
        if max_latency_s is not None and (latency_s.get(target.model) or 0.0) > max_latency_s:
            continue
        estimates.append((estimate, target.model))
    estimates.sort()
    if not estimates:
        return [], "cost: no target within max_cost_usd / max_latency_ms"
    return [m for _, m in estimates], f"cost: {estimates[0][1]} cheapest at ~${estimates[0][0]:.6f}"


def keywords_in(keywords: frozenset[str], text: str) -> frozenset[str]:
    """Which of a route's rule keywords occur in the text as whole words: one regex pass for all rules together."""
    return frozenset(match.group(0) for match in _keywords_pattern(keywords).finditer(text))


def matches(condition: RuleCondition, features: RequestFeatures, tokens: int, found: frozenset[str]) -> bool:
    """`found` is keywords_in(...) over every keyword of the route's rules."""
    if condition.min_prompt_tokens is not None and tokens < condition.min_prompt_tokens:
        return False
    if condition.max_prompt_tokens is not None and tokens > condition.max_prompt_tokens:
        return False
    if condition.keywords and not any(word.lower() in found for word in condition.keywords):
        return False
    if condition.regex is not None and _regex(condition.regex).search(features.prompt_text) is None:
        return False
    metadata = features.request.metadata
    if any(metadata.get(k) != v for k, v in condition.metadata.items()):
        return False
    if condition.has_images is not None and condition.has_images != features.has_images:
        return False
    if condition.has_tools is not None and condition.has_tools != features.has_tools:
        return False
    return not (condition.teams and features.team not in condition.teams)


@functools.cache
def _keywords_pattern(words: frozenset[str]) -> re.Pattern[str]:
    """One compiled alternation per route; longest first so a keyword is not shadowed by its own prefix. Routes come
    from the config, so the cache is bounded."""
    ordered = sorted(words, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(word) for word in ordered) + r")\b")


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)
