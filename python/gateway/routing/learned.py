"""The `learned` strategy: a call's query type, each eligible target's estimate from the profiles, and the bandit's
pick. The same object serves the gateway (through the Router) and the benchmark (benches/routing/learned.py)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.config.learning import LearnedConfig, QueryFeature
from gateway.config.routes import RouteConfig
from gateway.config.schema import ModelConfig
from gateway.learning.bandit import ArmEstimate, Chances, Normals, chances, estimate, shifted
from gateway.learning.clusters import ClusterBook
from gateway.learning.profiles import ProfileBook
from gateway.learning.query_types import TypeFeatures, query_type, token_bucket
from gateway.routing.features import RequestFeatures
from gateway.routing.strategies import estimated_answer_tokens

CHARS_PER_TOKEN = 4
"""English averages about four characters a token in the common BPE vocabularies."""
REFRESH_CALLS = 16
REFRESH_S = 60.0
"""A query type's estimates are worked out again after this many of its calls or seconds, whichever comes first
(times its stretch, below); the calls between draw their pick from the kept chances (a draw is 1 µs; estimates are
7 µs an arm, reading both memories, and the chances' 128 posterior draws 20). Feedback comes late anyway, and
profiles are shared between workers once a second."""
SETTLED_Z = 0.25
"""Estimates hold still while the best arm stays the best and each other arm's gap to it, in standard errors (capped
at GAP_Z_CAP), moved by less than this since the chances were drawn: the chances, which follow from those gaps, are
kept (the draws skipped) and the type's stretch doubles."""
GAP_Z_CAP = 3.0
"""An arm this many standard errors behind the best wins under 0.2% of the draws: further moves do not matter."""
MAX_STRETCH = 4
"""At most this many times REFRESH_CALLS and REFRESH_S between refreshes of a type whose estimates hold still: at the
benchmark's rates a refresh every 64 calls of a type, so a model that got worse is still seen within a few hundred
calls. Any move brings the stretch back to one."""


@dataclass(slots=True)
class _Policy:
    arms: list[ArmEstimate]
    """As estimated at the last refresh."""
    chances: Chances
    drawn_from: list[ArmEstimate]
    """The estimates the chances were drawn from: later ones are compared with these, so small moves that add up
    are not missed."""
    made_at: float
    ranked: list[str]
    """The arms, best estimate first: the order the others follow the pick in."""
    stretch: int = 1
    calls: int = 0
    tokens_sum: float = 0.0
    """The prompt tokens of the calls since the chances were drawn: the bucket's mean length prices the next
    estimates, so they do not jump with the length of the call that happens to refresh them."""


@dataclass(frozen=True, slots=True)
class LearnedChoice:
    """What the strategy decided for one call, as the route info and the audit record show it."""

    query_type: str
    arms: list[ArmEstimate]
    """The eligible targets, in configured order."""
    probabilities: dict[str, float]
    model: str
    explored: bool
    cold: bool

    def record(self) -> dict[str, object]:
        """For the audit record: enough to replay the decision offline (evaluate a policy by its propensities)."""
        return {
            "query_type": self.query_type,
            "model": self.model,
            "probabilities": self.probabilities,
            "explored": self.explored,
            "cold": self.cold,
        }


class LearnedStrategy:
    def __init__(
        self,
        profiles: ProfileBook,
        models: dict[str, ModelConfig],
        clock: Callable[[], float],
        rng: np.random.Generator | None = None,
        clusters: ClusterBook | None = None,
    ) -> None:
        """`clusters`: for routes typed by the cluster of the prompt's embedding."""
        self.profiles = profiles
        self._clusters = clusters
        self._models = models
        self._clock = clock
        numpy_rng = rng or np.random.default_rng()
        self._normals = Normals(numpy_rng)
        # One uniform per call picks the arm: Python's generator (seeded from numpy's, so a seeded run repeats
        # itself) costs a tenth of a call into numpy.
        self._uniform = random.Random(int(numpy_rng.integers(2**63))).random
        self._policies: dict[tuple[str, str, tuple[str, ...], str], _Policy] = {}

    def choose(
        self, route: RouteConfig, features: RequestFeatures, rule: str, eligible: list[str]
    ) -> tuple[list[str], str, LearnedChoice]:
        """`eligible`: the route's targets no filter excludes, in configured order, at least one."""
        learned = route.learned
        assert learned is not None
        # Estimated, not counted: a query type needs the length's order of size, and counting here would tokenize
        # every prompt once more (providers report the billed count).
        prompt_tokens = len(features.prompt_text) // CHARS_PER_TOKEN
        vector = features.prompt_vector
        cluster = (
            self._clusters.assign(route.name, vector)
            if vector is not None and self._clusters is not None and QueryFeature.CLUSTER in learned.features
            else None
        )
        kind = query_type(
            TypeFeatures(
                prompt_tokens,
                features.prompt_text,
                has_tools=features.has_tools,
                has_images=features.has_images,
                rule=rule,
                team=features.team,
                cluster=cluster,
            ),
            tuple(learned.features),
        )
        policy = self._policy(route, kind, eligible, prompt_tokens, features.request.max_tokens)
        arms = policy.arms
        picked = policy.chances.pick(self._uniform())
        order = [picked.model, *(model for model in policy.ranked if model != picked.model)]
        how = "cold start, " if picked.cold else ""
        how += "exploring" if picked.explored else "best estimate"
        reason = f"learned: type {kind!r}, {how} -> {picked.model}"
        choice = LearnedChoice(kind, arms, picked.probabilities, picked.model, picked.explored, picked.cold)
        return order, reason, choice

    def _policy(
        self, route: RouteConfig, kind: str, eligible: list[str], prompt_tokens: int, max_tokens: int | None
    ) -> _Policy:
        """The type's estimates and chances, worked out again every REFRESH_CALLS calls or REFRESH_S seconds (times
        the stretch). Kept per prompt-length bucket too: the cost term grows with the prompt."""
        key = (route.name, kind, tuple(eligible), token_bucket(prompt_tokens))
        now = self._clock()
        policy = self._policies.get(key)
        if (
            policy is None
            or policy.calls >= REFRESH_CALLS * policy.stretch
            or now - policy.made_at >= REFRESH_S * policy.stretch
        ):
            policy = self._policies[key] = self._refresh(route, kind, eligible, prompt_tokens, max_tokens, policy, now)
        policy.calls += 1
        policy.tokens_sum += prompt_tokens
        return policy

    def _refresh(
        self,
        route: RouteConfig,
        kind: str,
        eligible: list[str],
        prompt_tokens: int,
        max_tokens: int | None,
        previous: _Policy | None,
        now: float,
    ) -> _Policy:
        """New estimates; the chances drawn again only when the estimates moved (SETTLED_Z)."""
        if previous is not None and previous.calls:
            prompt_tokens = round(previous.tokens_sum / previous.calls)
        arms, cold = self._estimates(route, kind, eligible, prompt_tokens, max_tokens)
        if previous is not None and previous.chances.cold == cold and _held_still(previous.drawn_from, arms):
            stretch = min(previous.stretch * 2, MAX_STRETCH)
            return _Policy(arms, previous.chances, previous.drawn_from, now, previous.ranked, stretch)
        assert route.learned is not None
        odds = chances(arms, exploration=route.learned.exploration, cold=cold, normals=self._normals)
        ranked = [a.model for a in sorted(arms, key=lambda a: -a.objective)]
        return _Policy(arms, odds, arms, now, ranked)

    def decide(
        self, route: RouteConfig, kind: str, eligible: list[str], prompt_tokens: int, max_tokens: int | None
    ) -> tuple[list[ArmEstimate], Chances]:
        """Each eligible target's estimate for a call of this type and size, and the chances the bandit picks each
        with, from the profiles as they are now. Offline evaluation (insights/evaluation.py) asks this of logged
        calls to learn what the strategy would pick now."""
        arms, cold = self._estimates(route, kind, eligible, prompt_tokens, max_tokens)
        assert route.learned is not None
        return arms, chances(arms, exploration=route.learned.exploration, cold=cold, normals=self._normals)

    def _estimates(
        self, route: RouteConfig, kind: str, eligible: list[str], prompt_tokens: int, max_tokens: int | None
    ) -> tuple[list[ArmEstimate], bool]:
        """Each eligible target's estimate, and whether the type is still in cold start."""
        learned = route.learned
        assert learned is not None
        now = self._clock()
        arms = [self._estimate(route.name, kind, model, learned, prompt_tokens, max_tokens, now) for model in eligible]
        return arms, sum(a.feedback for a in arms) < learned.min_feedback

    def _estimate(
        self,
        route: str,
        kind: str,
        model_name: str,
        learned: LearnedConfig,
        prompt_tokens: int,
        max_tokens: int | None,
        now: float,
    ) -> ArmEstimate:
        arm = (route, kind, model_name)
        # The long memory, unless the recent feedback says the arm changed: then the recent one alone, so a model
        # that got worse loses traffic within the recent half-life, and a stationary arm's estimate keeps sharpening.
        recent = self.profiles.figures(arm, now)
        memory = self.profiles.figures(arm, now, memory=True)
        use = recent if shifted(recent[0], recent[1], memory[0], memory[1]) else memory
        feedback, quality_sum, answered, answer_tokens, latency_s = use
        model = self._models[model_name]
        answer = answer_tokens / answered if answered > 0 else estimated_answer_tokens(model, max_tokens)
        prices = model.schedule.at(now)
        cost = (prompt_tokens * prices.input_per_mtok + answer * prices.output_per_mtok) / 1e6
        return estimate(
            model_name,
            feedback=feedback,
            quality_sum=quality_sum,
            cost_usd=cost,
            latency_s=latency_s / answered if answered > 0 else 0.0,
            cost_weight=learned.cost_weight,
            latency_weight=learned.latency_weight,
        )


def _held_still(drawn: list[ArmEstimate], now: list[ArmEstimate]) -> bool:
    before, after = _gaps(drawn), _gaps(now)
    return before[0] == after[0] and all(abs(b - a) < SETTLED_Z for b, a in zip(before[1], after[1], strict=True))


def _gaps(arms: list[ArmEstimate]) -> tuple[int, list[float]]:
    """The best arm, and each arm's gap to it in standard errors of the difference, capped at GAP_Z_CAP."""
    best = max(range(len(arms)), key=lambda i: arms[i].objective)
    top = arms[best]
    return best, [min((top.objective - a.objective) / math.sqrt(top.sd**2 + a.sd**2 + 1e-12), GAP_Z_CAP) for a in arms]
