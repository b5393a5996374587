"""The `learned` strategy's choice among a query type's arms: Thompson sampling with bounded exploration, and the
probability with which every arm is picked (logged, so that other policies can be evaluated offline).

Pure: estimates in, a choice out; the profiles and the clock are the router's.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

import numpy as np

SHIFT_Z = 4.0
"""How many standard errors an arm's recent quality must stand from its long memory's before the arm counts as
changed: a stationary arm passes it about once in 16,000 checks, and a drop from 0.9 to 0.3 within about 50 of its
calls (recent half-life 375 calls)."""
DRAWS = 128
"""Posterior draws that estimate each arm's chance of winning, to within about 4 points (one standard error at
p = 0.5)."""


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


def shifted(recent_feedback: float, recent_quality: float, memory_feedback: float, memory_quality: float) -> bool:
    """Whether an arm's recent feedback (decayed counts and quality sums) says its quality moved from what its long
    memory holds. The recent evidence is part of the long memory's, so the difference of the two means has the
    variance q(1 - q)(1/n_recent - 1/n_memory) when nothing moved; decayed counts stand in for sample sizes, which
    they understate (a conservative test)."""
    if recent_feedback <= 0:
        return False
    memory_mean = (1.0 + memory_quality) / (2.0 + memory_feedback)
    recent_mean = (1.0 + recent_quality) / (2.0 + recent_feedback)
    share = 1.0 / (2.0 + recent_feedback) - 1.0 / (2.0 + memory_feedback)
    if share <= 0:
        return False
    return abs(recent_mean - memory_mean) > SHIFT_Z * math.sqrt(memory_mean * (1.0 - memory_mean) * share)


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


@dataclass(frozen=True, slots=True)
class Chances:
    """The policy for calls of one query type: each arm's probability of being picked. A call draws its pick from
    these, so the probability logged with it is exactly the one it was picked with (offline evaluation divides by
    it)."""

    models: tuple[str, ...]
    probabilities: dict[str, float]
    cumulative: tuple[float, ...]
    best: int
    """The arm with the best estimate (in cold start, the configured first): a pick of another is exploring."""
    cold: bool

    def pick(self, uniform: float) -> Choice:
        """The arm a uniform draw in [0, 1) lands on."""
        index = min(bisect.bisect_right(self.cumulative, uniform), len(self.models) - 1)
        return Choice(self.models[index], self.probabilities, explored=index != self.best, cold=self.cold)


def chances(arms: list[ArmEstimate], *, exploration: float, cold: bool, normals: Normals) -> Chances:
    """`arms` in the route's configured order, at least one. Thompson sampling's chances (the share of DRAWS
    posterior draws each arm wins), with exploration beyond the bound cut back in proportion: each other arm keeps
    its share of what remains. In cold start, the configured first takes 1 - exploration and the others share the
    rest."""
    models = tuple(a.model for a in arms)
    if len(arms) == 1:
        return Chances(models, {models[0]: 1.0}, (1.0,), 0, cold)
    if cold:
        shares = [1.0 - exploration] + [exploration / (len(arms) - 1)] * (len(arms) - 1)
        best = 0
    else:
        means = [a.objective for a in arms]
        draws = normals.take(DRAWS, len(arms)) * [a.sd for a in arms] + means
        wins = np.bincount(draws.argmax(axis=1), minlength=len(arms)).tolist()
        best = max(range(len(arms)), key=means.__getitem__)
        exploring = 1.0 - wins[best] / DRAWS
        keep = 1.0 if exploring <= exploration else exploration / exploring
        shares = [w / DRAWS * keep for w in wins]
        shares[best] = 0.0
        shares[best] = 1.0 - sum(shares)
    return Chances(models, dict(zip(models, shares, strict=True)), tuple(itertools.accumulate(shares)), best, cold)
