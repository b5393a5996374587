"""Off-policy evaluation: what another routing policy would have earned on the calls a learned route logged, from
the probability with which the logging policy picked each arm (its propensities) and the feedback the calls got.

The estimate is doubly robust (Dudík, Langford and Li, 2011): per call, the target policy's expected reward under a
direct model (the mean reward of each (query type, arm) in the log), corrected by the importance-weighted error of
that model on the arm that ran. It is unbiased when the logged propensities are right, whatever the model, and has
less variance than plain inverse propensity scoring (also reported) when the model is good. The direct model is
cross-fitted on two folds, so a call's own reward never enters its model term.

Pure: logged calls and policies in, estimates out.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Z_95 = 1.959964
"""The normal quantile of a two-sided 95% interval."""
MIN_SUPPORT = 0.95
"""A policy is estimable when the logging policy could have made its picks on at least this share of the calls
(weighted by the policy's probabilities): elsewhere nothing was learned of what its picks would have earned."""


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One logged decision of a learned route and what it earned."""

    query_type: str
    arm: str
    """The model the logging policy picked."""
    propensities: Mapping[str, float]
    """Per eligible arm, the probability that the logging policy picked it."""
    quality: float
    """Feedback on the route's quality metric, scaled to [0, 1]."""
    cost_usd: float
    latency_s: float
    prompt_tokens: int = 0
    """The prompt's size, which the learned policy's cost estimate reads."""

    @property
    def propensity(self) -> float:
        """The probability that the logging policy picked the arm that ran."""
        return self.propensities.get(self.arm, 0.0)


Policy = Callable[[LoggedCall], Mapping[str, float]]
"""A routing policy to evaluate: per logged call, the probability with which it would pick each arm."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy's value per call with its 95% normal confidence interval."""

    value: float
    low: float
    high: float
    ips: float
    """The plain inverse propensity score, for comparison."""


@dataclass(frozen=True, slots=True)
class PolicyValue:
    name: str
    support: float
    """Share of the policy's picks (weighted by its probabilities) that the logging policy could also have made."""
    matched: int
    """Calls on which the arm that ran is one the policy might pick: the evidence behind the estimate."""
    objective: Estimate | None
    """None when not estimable."""
    quality: Estimate | None
    cost_usd: Estimate | None
    reason: str = ""
    """Why it is not estimable."""

    @property
    def estimable(self) -> bool:
        return self.objective is not None


@dataclass(frozen=True, slots=True)
class Weights:
    """The route's objective: quality - cost_weight * cost_usd - latency_weight * seconds."""

    cost: float
    latency: float

    def objective(self, call: LoggedCall) -> float:
        return call.quality - self.cost * call.cost_usd - self.latency * call.latency_s


def evaluate(name: str, policy: Policy, calls: Sequence[LoggedCall], weights: Weights) -> PolicyValue:
    """The policy's estimated value per call over `calls`, or why it cannot be estimated from them."""
    if not calls:
        return PolicyValue(name, 0.0, 0, None, None, None, "no logged call has feedback")
    targets = [policy(call) for call in calls]
    support = sum(_supported(call, target) for call, target in zip(calls, targets, strict=True)) / len(calls)
    matched = sum(1 for call, target in zip(calls, targets, strict=True) if target.get(call.arm, 0.0) > 0)
    if matched == 0:
        return PolicyValue(name, support, 0, None, None, None, "the logging policy never picked what it would pick")
    if support < MIN_SUPPORT:
        reason = f"the logging policy could have made its picks on only {support:.0%} of the calls"
        return PolicyValue(name, support, matched, None, None, None, reason)
    rewards: dict[str, Callable[[LoggedCall], float]] = {
        "objective": weights.objective,
        "quality": lambda call: call.quality,
        "cost_usd": lambda call: call.cost_usd,
    }
    found = {key: _doubly_robust(calls, targets, reward) for key, reward in rewards.items()}
    return PolicyValue(name, support, matched, found["objective"], found["quality"], found["cost_usd"])


def _supported(call: LoggedCall, target: Mapping[str, float]) -> float:
    return sum(p for arm, p in target.items() if p > 0 and call.propensities.get(arm, 0.0) > 0)


def _doubly_robust(
    calls: Sequence[LoggedCall], targets: Sequence[Mapping[str, float]], reward: Callable[[LoggedCall], float]
) -> Estimate:
    values = [reward(call) for call in calls]
    models = [_direct_model(calls, values, fold) for fold in (0, 1)]
    terms, ips_terms = [], []
    for i, (call, target, value) in enumerate(zip(calls, targets, values, strict=True)):
        model = models[1 - i % 2]  # fitted on the other fold
        weight = target.get(call.arm, 0.0) / call.propensity
        predicted = sum(p * model(call.query_type, arm) for arm, p in target.items() if p > 0)
        terms.append(predicted + weight * (value - model(call.query_type, call.arm)))
        ips_terms.append(weight * value)
    mean = sum(terms) / len(terms)
    spread = _standard_error(terms, mean)
    return Estimate(mean, mean - Z_95 * spread, mean + Z_95 * spread, sum(ips_terms) / len(ips_terms))


def _direct_model(calls: Sequence[LoggedCall], values: Sequence[float], fold: int) -> Callable[[str, str], float]:
    """The mean reward per (query type, arm) on one fold's calls, else the arm's over every type, else the fold's."""
    by_type: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    by_arm: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    total = [0.0, 0.0]
    for i in range(fold, len(calls), 2):
        call, value = calls[i], values[i]
        for sums in (by_type[call.query_type, call.arm], by_arm[call.arm], total):
            sums[0] += value
            sums[1] += 1
    overall = total[0] / total[1] if total[1] else 0.0

    def model(query_type: str, arm: str) -> float:
        sums = by_type.get((query_type, arm)) or by_arm.get(arm)
        return sums[0] / sums[1] if sums else overall

    return model


def _standard_error(terms: Sequence[float], mean: float) -> float:
    if len(terms) < 2:
        return math.inf
    variance = sum((t - mean) ** 2 for t in terms) / (len(terms) - 1)
    return math.sqrt(variance / len(terms))
