"""Off-policy estimates on synthetic logs whose true values are known."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from gateway.learning.evaluation import LoggedCall, Weights, evaluate

# The chance of a good answer per (query type, arm), and the logging policy's propensities per type: `dear` is never
# explored, `mid` rarely on type a.
GOOD = {"a": {"cheap": 0.9, "mid": 0.5, "dear": 0.95}, "b": {"cheap": 0.2, "mid": 0.8, "dear": 0.95}}
LOGGING = {"a": {"cheap": 0.9, "mid": 0.1, "dear": 0.0}, "b": {"cheap": 0.3, "mid": 0.7, "dear": 0.0}}
COST = {"cheap": 0.001, "mid": 0.003, "dear": 0.01}
WEIGHTS = Weights(cost=10.0, latency=0.0)


def log(seed: int, calls: int) -> list[LoggedCall]:
    rng = random.Random(seed)
    logged = []
    for _ in range(calls):
        kind = rng.choice("ab")
        arms, weights = zip(*LOGGING[kind].items(), strict=True)
        arm = rng.choices(arms, weights)[0]
        good = float(rng.random() < GOOD[kind][arm])
        logged.append(LoggedCall(kind, arm, LOGGING[kind], good, COST[arm], 0.5))
    return logged


def truth(policy: Mapping[str, Mapping[str, float]]) -> float:
    """The objective a policy (per type, arm probabilities) earns per call, types equally frequent."""
    return sum(p * (GOOD[kind][arm] - WEIGHTS.cost * COST[arm]) for kind in "ab" for arm, p in policy[kind].items()) / 2


def fixed(arm: str) -> dict[str, dict[str, float]]:
    return {kind: {arm: 1.0} for kind in "ab"}


@pytest.mark.parametrize("seed", range(5))
def test_the_interval_holds_the_true_value_of_each_explored_policy(seed: int) -> None:
    calls = log(seed, 4000)
    # A policy that never was: cheap for type a, mid for type b (the best per type).
    best = {"a": {"cheap": 1.0}, "b": {"mid": 1.0}}
    for name, policy in (("logged", LOGGING), ("cheap", fixed("cheap")), ("mid", fixed("mid")), ("best", best)):
        value = evaluate(name, lambda call, policy=policy: policy[call.query_type], calls, WEIGHTS)
        assert value.objective is not None, name
        assert value.support == pytest.approx(1.0)
        assert value.objective.low <= truth(policy) <= value.objective.high, name
        assert value.objective.high - value.objective.low < 0.12, name  # informative, not merely wide
        assert value.quality is not None
        assert value.cost_usd is not None
    mid = evaluate("mid", lambda _call: {"mid": 1.0}, calls, WEIGHTS)
    assert mid.cost_usd is not None
    assert mid.cost_usd.value == pytest.approx(COST["mid"], rel=0.1)
    assert mid.matched == sum(1 for c in calls if c.arm == "mid")


def test_doubly_robust_varies_less_than_inverse_propensity_scores() -> None:
    spreads = {"dr": [], "ips": []}
    for seed in range(30):
        value = evaluate("mid", lambda _call: {"mid": 1.0}, log(seed, 1000), WEIGHTS)
        assert value.objective is not None
        spreads["dr"].append(value.objective.value)
        spreads["ips"].append(value.objective.ips)

    def variance(xs: list[float]) -> float:
        mean = sum(xs) / len(xs)
        return sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)

    assert variance(spreads["dr"]) < variance(spreads["ips"])


def test_arms_the_logging_policy_never_chose_are_not_estimable() -> None:
    calls = log(1, 500)
    dear = evaluate("dear", lambda _call: {"dear": 1.0}, calls, WEIGHTS)
    assert not dear.estimable
    assert dear.objective is None
    assert dear.matched == 0
    assert "never picked" in dear.reason
    # Mostly cheap, a tenth dear: the logging policy could make only 90% of its picks.
    mostly = evaluate("mostly", lambda _call: {"cheap": 0.9, "dear": 0.1}, calls, WEIGHTS)
    assert not mostly.estimable
    assert mostly.support == pytest.approx(0.9)
    assert "90%" in mostly.reason
    # An arm not eligible on some calls (absent from their propensities) is unsupported there.
    only_a = [
        c if c.query_type == "a" else LoggedCall("b", c.arm, {"mid": 1.0}, c.quality, c.cost_usd, 0.5) for c in calls
    ]
    cheap = evaluate("cheap", lambda _call: {"cheap": 1.0}, only_a, WEIGHTS)
    assert cheap.support == pytest.approx(sum(1 for c in calls if c.query_type == "a") / len(calls))
    assert not cheap.estimable
    assert not evaluate("any", lambda _call: {"cheap": 1.0}, [], WEIGHTS).estimable
