"""The `learned` strategy's choice among a query type's arms: Thompson sampling with bounded exploration, and the
probability with which every arm was chosen (logged, so that other policies can be evaluated offline).

Pure: estimates in, a choice out; the profiles and the clock are the router's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DRAWS = 128
"""Posterior draws per choice: the first picks the arm (Thompson sampling), all of them estimate each arm's chance of
being picked, to within about 4 points (one standard error at p = 0.5)."""


@dataclass(frozen=True, slots=True)
class ArmEstimate:
    """What is believed of one target for one query type."""

    model: str
    objective: float
    """Posterior mean of quality - cost_weight * cost_usd - latency_weight * seconds."""
    sd: float
    """The uncertainty of the quality term (the others are taken as known)."""
    quality: float
    """Posterior mean quality, from a uniform prior: 0.5 with no feedback."""
    cost_usd: float
    latency_s: float
    feedback: float
    """Decayed count of quality feedback behind the estimate."""


@dataclass(frozen=True, slots=True)
class Choice:
    model: str
    probabilities: dict[str, float]
    """Per arm, the probability that this policy picks it for this call."""
    explored: bool
    """The pick is not the arm with the best estimate (or, in cold start, not the configured first)."""
    cold: bool
    """Too little feedback yet: the configured order, with `exploration` of the calls spread over the others."""


def estimate(
    model: str,
    *,
    feedback: float,
    quality_sum: float,
    cost_usd: float,
    latency_s: float,
    cost_weight: float,
    latency_weight: float,
) -> ArmEstimate:
    """The Beta posterior of quality (uniform prior, fractional counts for graded feedback) and the objective."""
    a, b = 1.0 + quality_sum, 1.0 + max(feedback - quality_sum, 0.0)
    quality = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    objective = quality - cost_weight * cost_usd - latency_weight * latency_s
    return ArmEstimate(model, objective, sd, quality, cost_usd, latency_s, feedback)


class Normals:
    """Standard normal draws, made a block at a time: one call into numpy per block instead of one per choice, which
    cost more than the choice's own arithmetic."""

    BLOCK = 1 << 16

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._block = rng.standard_normal(self.BLOCK)
        self._at = 0

    def take(self, rows: int, columns: int) -> np.ndarray:
        size = rows * columns
        if self._at + size > self.BLOCK:
            self._block = self.rng.standard_normal(self.BLOCK)
            self._at = 0
        taken = self._block[self._at : self._at + size]
        self._at += size
        return taken.reshape(rows, columns)


def choose(arms: list[ArmEstimate], *, exploration: float, cold: bool, normals: Normals) -> Choice:
    """`arms` in the route's configured order, at least one."""
    if len(arms) == 1:
        return Choice(arms[0].model, {arms[0].model: 1.0}, explored=False, cold=cold)
    if cold:
        return _cold(arms, exploration, normals.rng)
    means = [a.objective for a in arms]
    draws = normals.take(DRAWS, len(arms)) * [a.sd for a in arms] + means
    winners = draws.argmax(axis=1)
    shares = np.bincount(winners, minlength=len(arms)).tolist()
    greedy = max(range(len(arms)), key=means.__getitem__)
    pick = int(winners[0])
    exploring = 1.0 - shares[greedy] / DRAWS
    # Exploration beyond the bound is cut back in proportion: each other arm keeps its share of what remains.
    keep = 1.0 if exploring <= exploration else exploration / exploring
    if pick != greedy and keep < 1.0 and normals.rng.random() >= keep:
        pick = greedy
    probabilities = {a.model: shares[i] / DRAWS * keep for i, a in enumerate(arms) if i != greedy}
    probabilities[arms[greedy].model] = 1.0 - sum(probabilities.values())
    return Choice(arms[pick].model, probabilities, explored=pick != greedy, cold=False)


def _cold(arms: list[ArmEstimate], exploration: float, rng: np.random.Generator) -> Choice:
    others = len(arms) - 1
    probabilities = {a.model: exploration / others for a in arms[1:]}
    probabilities[arms[0].model] = 1.0 - exploration
    if rng.random() < exploration:
        pick = arms[1 + int(rng.integers(others))].model
        return Choice(pick, probabilities, explored=True, cold=True)
    return Choice(arms[0].model, probabilities, explored=False, cold=True)
