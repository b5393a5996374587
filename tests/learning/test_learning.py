"""The pure parts of learning: query types, decayed profiles and the bandit's choice with its probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.config.learning import QueryFeature
from gateway.learning.bandit import Normals, choose, estimate
from gateway.learning.profiles import ProfileBook
from gateway.learning.query_types import TypeFeatures, has_code, language, query_type, token_bucket

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
    picks = [choose([sure, close], exploration=0.05, cold=False, normals=normals) for _ in range(2000)]
    assert all(sum(p.probabilities.values()) == pytest.approx(1.0) for p in picks)
    explored = sum(p.explored for p in picks) / len(picks)
    assert explored <= 0.05 + 0.02  # capped, though `b` is uncertain enough to win far more often
    assert all(p.probabilities["b"] <= 0.05 + 1e-9 for p in picks)
    assert {p.model for p in picks if p.explored} == {"b"}
    cold = choose([close, sure], exploration=0.2, cold=True, normals=normals)
    assert cold.cold
    assert cold.probabilities == pytest.approx({"b": 0.8, "a": 0.2})
    costly = estimate("c", feedback=400, quality_sum=360, cost_usd=0.01, latency_s=0, cost_weight=10, latency_weight=0)
    assert costly.objective == pytest.approx(sure.objective - 0.1)
