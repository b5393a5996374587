"""The `learned` strategy: a call's query type, each eligible target's estimate from the profiles, and the bandit's
pick. The same object serves the gateway (through the Router) and the benchmark (benches/routing/learned.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gateway.config.learning import LearnedConfig
from gateway.config.routes import RouteConfig
from gateway.config.schema import ModelConfig
from gateway.learning.bandit import ArmEstimate, Normals, choose, estimate
from gateway.learning.profiles import ProfileBook
from gateway.learning.query_types import TypeFeatures, query_type
from gateway.routing.features import RequestFeatures
from gateway.routing.strategies import estimated_answer_tokens

CHARS_PER_TOKEN = 4
"""English averages about four characters a token in the common BPE vocabularies."""


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
        self._normals = Normals(rng or np.random.default_rng())

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
        now = self._clock()
        arms = [
            self._estimate(route.name, kind, model, learned, prompt_tokens, features.request.max_tokens, now)
            for model in eligible
        ]
        cold = sum(a.feedback for a in arms) < learned.min_feedback
        picked = choose(arms, exploration=learned.exploration, cold=cold, normals=self._normals)
        rest = sorted((a for a in arms if a.model != picked.model), key=lambda a: -a.objective)
        order = [picked.model, *(a.model for a in rest)]
        how = "cold start, " if cold else ""
        how += "exploring" if picked.explored else "best estimate"
        reason = f"learned: type {kind!r}, {how} -> {picked.model}"
        choice = LearnedChoice(kind, arms, picked.probabilities, picked.model, picked.explored, cold)
        return order, reason, choice

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
        cost = (prompt_tokens * model.input_cost_per_mtok + answer * model.output_cost_per_mtok) / 1e6
        return estimate(
            model_name,
            feedback=feedback,
            quality_sum=quality_sum,
            cost_usd=cost,
            latency_s=latency_s / answered if answered > 0 else 0.0,
            cost_weight=learned.cost_weight,
            latency_weight=learned.latency_weight,
        )
