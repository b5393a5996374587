"""Strategy and rule logic, without sockets: orders, splits, stickiness, cost and rule matching."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.chat import ChatRequest, ImagePart, Message, Tool
from gateway.config.routes import RetryConfig, RouteConfig, RuleCondition
from gateway.config.schema import ModelConfig
from gateway.routing import strategies
from gateway.routing.backoff import backoff_s
from gateway.routing.features import RequestFeatures


def features(text: str = "hello", **request: object) -> RequestFeatures:
    chat = ChatRequest(model="r", messages=[Message("user", text)], **request)  # type: ignore[arg-type]
    return RequestFeatures(
        chat, team="search", streaming=False, count_prompt=lambda _m: len(text.split()), prompt_bound=10**9
    )


def route(**fields: object) -> RouteConfig:
    return RouteConfig.model_validate({"name": "r", **fields})


def test_weighted_split_matches_weights() -> None:
    config = route(strategy="weighted", targets=[{"model": "a", "weight": 3}, {"model": "b", "weight": 1}])
    rng = random.Random(7)
    counts = Counter(strategies.weighted(config, features(), rng)[0][0] for _ in range(4000))
    assert abs(counts["a"] / 4000 - 0.75) < 0.03


def test_weighted_sticky_keeps_a_user_on_one_arm_and_splits_users_by_weight() -> None:
    config = route(
        strategy="weighted", sticky="user", targets=[{"model": "a", "weight": 1}, {"model": "b", "weight": 1}]
    )
    rng = random.Random(1)
    arms = {strategies.weighted(config, features(user="alice"), rng)[0][0] for _ in range(50)}
    assert len(arms) == 1
    split = Counter(strategies.weighted(config, features(user=f"user-{i}"), rng)[0][0] for i in range(2000))
    assert abs(split["a"] / 2000 - 0.5) < 0.05


def test_least_latency_explores_unmeasured_then_prefers_fastest() -> None:
    config = route(strategy="least_latency", exploration=0.0, targets=[{"model": "a"}, {"model": "b"}])
    rng = random.Random(0)
    order, reason = strategies.least_latency(config, {"a": 0.2, "b": None}, rng)
    assert order[0] == "b"
    assert "exploring" in reason
    order, _ = strategies.least_latency(config, {"a": 0.2, "b": 0.05}, rng)
    assert order == ["b", "a"]


def test_least_latency_exploration_share() -> None:
    config = route(strategy="least_latency", exploration=0.1, targets=[{"model": "a"}, {"model": "b"}])
    rng = random.Random(3)
    picks = Counter(strategies.least_latency(config, {"a": 0.01, "b": 0.5}, rng)[0][0] for _ in range(5000))
    assert abs(picks["b"] / 5000 - 0.1) < 0.02


def test_cost_orders_by_estimate_and_applies_limits() -> None:
    models = {
        "cheap": ModelConfig(name="cheap", provider="p", input_cost_per_mtok=0.1, output_cost_per_mtok=0.4),
        "dear": ModelConfig(name="dear", provider="p", input_cost_per_mtok=3, output_cost_per_mtok=15),
    }
    config = route(strategy="cost", targets=[{"model": "dear"}, {"model": "cheap"}])
    order, reason = strategies.cost(config, models, features("one two three", max_tokens=100), {})
    assert order == ["cheap", "dear"]
    assert "cheap cheapest" in reason
    capped = route(strategy="cost", max_cost_usd=0.0001, targets=[{"model": "dear"}, {"model": "cheap"}])
    assert strategies.cost(capped, models, features(max_tokens=100), {})[0] == ["cheap"]
    fast_only = route(strategy="cost", max_latency_ms=100, targets=[{"model": "dear"}, {"model": "cheap"}])
    assert strategies.cost(fast_only, models, features(), {"cheap": 0.5, "dear": 0.05})[0] == ["dear"]


@pytest.mark.parametrize(
    ("condition", "feature", "tokens", "expected"),
    [
        ({"max_prompt_tokens": 10}, features(), 5, True),
        ({"max_prompt_tokens": 10}, features(), 11, False),
        ({"min_prompt_tokens": 100}, features(), 150, True),
        ({"keywords": ["refund", "invoice"]}, features("Where is my INVOICE?"), 5, True),
        ({"keywords": ["refund"]}, features("refunded already"), 5, False),
        ({"regex": r"\bdef \w+\("}, features("fix def parse(x): pass"), 5, True),
        ({"metadata": {"app": "search"}}, features(metadata={"app": "search"}), 5, True),
        ({"metadata": {"app": "search"}}, features(metadata={"app": "chat"}), 5, False),
        ({"has_tools": True}, features(tools=[Tool("t")]), 5, True),
        ({"has_tools": True}, features(), 5, False),
        ({"teams": ["search"]}, features(), 5, True),
        ({"teams": ["billing"]}, features(), 5, False),
    ],
)
def test_rule_conditions(condition: dict[str, object], feature: RequestFeatures, tokens: int, expected: bool) -> None:
    rule = RuleCondition.model_validate(condition)
    found = strategies.keywords_in(frozenset(w.lower() for w in rule.keywords), feature.prompt_text)
    assert strategies.matches(rule, feature, tokens, found) is expected


def test_images_condition() -> None:
    chat = ChatRequest(
        model="r", messages=[Message("user", "", parts=("look", ImagePart(url="https://x/a.png")))], images=1
    )
    with_image = RequestFeatures(chat, team="", streaming=False, count_prompt=lambda _m: 1, prompt_bound=10**9)
    assert strategies.matches(RuleCondition(has_images=True), with_image, 1, frozenset())
    assert not strategies.matches(RuleCondition(has_images=True), features(), 1, frozenset())


def test_backoff_grows_with_full_jitter() -> None:
    config = RetryConfig(backoff_ms=100, max_backoff_ms=1000)
    rng = random.Random(5)
    first = [backoff_s(1, config, rng=rng) for _ in range(500)]
    third = [backoff_s(3, config, rng=rng) for _ in range(500)]
    capped = [backoff_s(10, config, rng=rng) for _ in range(500)]
    assert max(first) <= 0.1
    assert max(third) <= 0.4
    assert max(third) > 0.3
    assert max(capped) <= 1.0
    assert min(first) < 0.01, "full jitter reaches near zero"
