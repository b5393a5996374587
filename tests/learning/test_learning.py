"""The pure parts of learning: query types, decayed profiles and the bandit's choice with its probabilities."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway.chat import ChatRequest, Message
from gateway.config.learning import QueryFeature
from gateway.config.loader import parse_config
from gateway.learning.bandit import Normals, chances, estimate
from gateway.learning.profiles import ProfileBook
from gateway.learning.query_types import TypeFeatures, has_code, language, query_type, token_bucket
from gateway.routing.features import RequestFeatures
from gateway.routing.learned import REFRESH_CALLS, REFRESH_S, LearnedChoice, LearnedStrategy

ALL = tuple(QueryFeature)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what is the capital of france?", "en"),
        ("traduis: le chat est sur la table et il dort", "fr"),
        ("der hund ist nicht auf dem sofa", "de"),
        ("los niños juegan en el parque con sus amigos", "es"),
        ("привет, как дела", "ru"),
        ("这是什么", "zh"),
        ("12 + 7 * 3", "und"),
    ],
)
def test_language(text: str, expected: str) -> None:
    assert language(text) == expected


def test_code_and_buckets() -> None:
    assert has_code("fix this:\ndef f(x):\n    return x + 1")
    assert has_code("look: ```x = 1```")
    assert not has_code("a plain question\nover two lines")
    assert has_code("why?\nfrom os import path\nreturn path")
    assert has_code("this query:\nselect a, b\nfrom t where a > 1;")  # prompts are lower-cased
    assert has_code("int main() {\n  return 0;\n}")
    assert not has_code("from my notes import nothing much\nreturned home\nthe end")
    assert not has_code("return 1\nfrom here, the end")  # one line that looks like code is not enough
    assert [token_bucket(n) for n in (0, 63, 64, 5000)] == ["tokens<64", "tokens<64", "tokens<256", "tokens>=4096"]
    kind = query_type(
        TypeFeatures(10, "what is this\nint x = 1;\nreturn x;", has_tools=True, rule="short", team="lab"), ALL
    )
    assert kind == "tokens<64 lang=en code tools rule=short team=lab"
    assert query_type(TypeFeatures(10, "hello", team="lab"), (QueryFeature.TOKENS,)) == "tokens<64"


def test_profiles_decay_with_the_half_life() -> None:
    book = ProfileBook({"r": 100.0})
    arm = ("r", "t", "m")
    book.observe_call(arm, 0.0, ok=True, latency_s=0.2, cost_usd=0.01, answer_tokens=100)
    book.observe_quality(arm, 0.0, 1.0)
    now = book.profile(arm, 0.0)
    assert (now.calls, now.feedback, now.quality, now.cost_usd) == pytest.approx((1, 1, 1.0, 0.01))
    later = book.profile(arm, 100.0)
    assert later.calls == pytest.approx(0.5)
    assert later.quality == pytest.approx(1.0)  # a mean decays in numerator and denominator alike
    # Across an epoch boundary (16 half-lives) the evidence carries on, decayed.
    assert book.profile(arm, 1700.0).calls == pytest.approx(2**-17)
    # A changed rating: the difference, counted once.
    book.observe_quality(arm, 0.0, -1.0, count=0.0)
    assert book.profile(arm, 0.0).quality == pytest.approx(0.0)
    assert book.profile(("other", "t", "m"), 0.0).calls == 0  # not a learned route: not kept


def test_choice_probabilities_and_bounded_exploration() -> None:
    normals = Normals(np.random.default_rng(1))
    sure = estimate("a", feedback=400, quality_sum=360, cost_usd=0, latency_s=0, cost_weight=0, latency_weight=0)
    close = estimate("b", feedback=4, quality_sum=3, cost_usd=0, latency_s=0, cost_weight=0, latency_weight=0)
    draw = random.Random(3).random
    picks = [chances([sure, close], exploration=0.05, cold=False, normals=normals).pick(draw()) for _ in range(2000)]
    assert all(sum(p.probabilities.values()) == pytest.approx(1.0) for p in picks)
    explored = sum(p.explored for p in picks) / len(picks)
    assert explored <= 0.05 + 0.02  # capped, though `b` is uncertain enough to win far more often
    assert all(p.probabilities["b"] <= 0.05 + 1e-9 for p in picks)
    assert {p.model for p in picks if p.explored} == {"b"}
    cold = chances([close, sure], exploration=0.2, cold=True, normals=normals).pick(draw())
    assert cold.cold
    assert cold.probabilities == pytest.approx({"b": 0.8, "a": 0.2})
    costly = estimate("c", feedback=400, quality_sum=360, cost_usd=0.01, latency_s=0, cost_weight=10, latency_weight=0)
    assert costly.objective == pytest.approx(sure.objective - 0.1)


def test_picks_follow_the_logged_probabilities_exactly() -> None:
    """A pick is a draw from the chances it logs: over many calls the shares match them."""
    normals = Normals(np.random.default_rng(5))
    arms = [
        estimate("a", feedback=30, quality_sum=24, cost_usd=0, latency_s=0, cost_weight=0, latency_weight=0),
        estimate("b", feedback=30, quality_sum=21, cost_usd=0, latency_s=0, cost_weight=0, latency_weight=0),
        estimate("c", feedback=30, quality_sum=20, cost_usd=0, latency_s=0, cost_weight=0, latency_weight=0),
    ]
    odds = chances(arms, exploration=1.0, cold=False, normals=normals)
    draw = random.Random(8).random
    picks = [odds.pick(draw()).model for _ in range(20_000)]
    for model, probability in odds.probabilities.items():
        assert picks.count(model) / len(picks) == pytest.approx(probability, abs=0.015)
    assert odds.pick(0.0).model == "a" or odds.probabilities["a"] == 0
    assert odds.pick(0.999_999).explored == (odds.models[-1] != "a")


def test_the_strategy_works_its_chances_out_again_after_some_calls_or_seconds() -> None:
    config = parse_config(
        """
providers: [{name: sim, type: simulated}]
models: [{name: a, provider: sim}, {name: b, provider: sim}]
feedback: {metrics: [{name: thumbs, type: boolean}]}
routes:
  - {name: r, strategy: learned, targets: [{model: a}, {model: b}], learned: {quality: thumbs, min_feedback: 10}}
"""
    )
    route = config.routes[0]
    clock = [0.0]
    book = ProfileBook({"r": 86_400.0})
    strategy = LearnedStrategy(book, {m.name: m for m in config.models}, lambda: clock[0], np.random.default_rng(1))

    request = ChatRequest("r", [Message("user", "hello")])
    features = RequestFeatures(request, team="", streaming=False, count_prompt=lambda _m: 2, prompt_bound=2)

    def decision() -> LearnedChoice:
        return strategy.choose(route, features, "", ["a", "b"])[2]

    def cold() -> bool:
        return decision().cold

    assert cold()
    for _ in range(50):  # b is rated well: enough feedback to leave cold start
        book.observe_quality(("r", "tokens<64 lang=und", "b"), 0.0, 1.0)
    assert all(cold() for _ in range(REFRESH_CALLS - 1))  # the same chances until the refresh
    assert not cold()
    for _ in range(50):  # now a is rated well too: seen once a refresh is due, by time as much as by calls
        book.observe_quality(("r", "tokens<64 lang=und", "a"), 0.0, 1.0)
    assert decision().arms[0].feedback == pytest.approx(0.0)
    clock[0] = REFRESH_S
    assert decision().arms[0].feedback == pytest.approx(50.0, rel=1e-3)  # decayed by 60 s of a day's half-life
