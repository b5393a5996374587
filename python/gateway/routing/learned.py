"""The `learned` strategy: a call's query type, each eligible target's estimate from the profiles, and the bandit's
pick. The same object serves the gateway (through the Router) and the benchmark (benches/routing/learned.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.config.learning import LearnedConfig
from gateway.config.routes import RouteConfig
from gateway.config.schema import ModelConfig
from gateway.learning.bandit import ArmEstimate, Chances, Normals, chances, estimate
from gateway.learning.profiles import ProfileBook
from gateway.learning.query_types import TypeFeatures, query_type, token_bucket
from gateway.routing.features import RequestFeatures
from gateway.routing.strategies import estimated_answer_tokens

CHARS_PER_TOKEN = 4
"""English averages about four characters a token in the common BPE vocabularies."""
REFRESH_CALLS = 16
REFRESH_S = 60.0
"""A query type's estimates and chances are worked out again after this many of its calls or seconds, whichever
comes first; the calls between draw from them (a draw is 1 µs, working them out 20: three profile reads, three
estimates and 128 posterior draws). Feedback comes late anyway, and profiles are shared between workers once a
second."""


@dataclass(slots=True)
class _Policy:
    arms: list[ArmEstimate]
    chances: Chances
    made_at: float
    ranked: list[str]
    """The arms, best estimate first: the order the others follow the pick in."""
    calls: int = 0


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
    ) -> None:
        self.profiles = profiles
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
        kind = query_type(
            TypeFeatures(
                prompt_tokens,
                features.prompt_text,
                has_tools=features.has_tools,
                has_images=features.has_images,
                rule=rule,
                team=features.team,
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
        """The type's estimates and chances, worked out again every REFRESH_CALLS calls or REFRESH_S seconds. Kept
        per prompt-length bucket too: the cost term grows with the prompt."""
        key = (route.name, kind, tuple(eligible), token_bucket(prompt_tokens))
        now = self._clock()
        policy = self._policies.get(key)
        if policy is None or policy.calls >= REFRESH_CALLS or now - policy.made_at >= REFRESH_S:
            arms, odds = self.decide(route, kind, eligible, prompt_tokens, max_tokens)
            ranked = [a.model for a in sorted(arms, key=lambda a: -a.objective)]
            policy = self._policies[key] = _Policy(arms, odds, now, ranked)
        policy.calls += 1
        return policy

    def decide(
        self, route: RouteConfig, kind: str, eligible: list[str], prompt_tokens: int, max_tokens: int | None
    ) -> tuple[list[ArmEstimate], Chances]:
        """Each eligible target's estimate for a call of this type and size, and the chances the bandit picks each
        with, from the profiles as they are now. Offline evaluation (insights/evaluation.py) asks this of logged
        calls to learn what the strategy would pick now."""
        learned = route.learned
        assert learned is not None
        now = self._clock()
        arms = [self._estimate(route.name, kind, model, learned, prompt_tokens, max_tokens, now) for model in eligible]
        cold = sum(a.feedback for a in arms) < learned.min_feedback
        return arms, chances(arms, exploration=learned.exploration, cold=cold, normals=self._normals)

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
        feedback, quality_sum, answered, answer_tokens, latency_s = self.profiles.figures(
            (route, kind, model_name), now
        )
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
