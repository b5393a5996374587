"""The pure parts of learning: query types, decayed profiles and the bandit's choice with its probabilities."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway.chat import ChatRequest, Message
from gateway.config.learning import QueryFeature
from gateway.config.loader import parse_config
from gateway.config.routes import RouteConfig
from gateway.learning.bandit import Normals, chances, estimate, shifted
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


def test_a_shift_from_the_long_memory_is_told_from_noise() -> None:
    # 900 of 1,000 good in the long memory; the recent 100 (part of them) at 0.88: noise. At 0.5: a shift.
    assert not shifted(100, 88, 1000, 900)
    assert shifted(100, 50, 1000, 900)
    assert shifted(100, 99.9, 1000, 700)  # better counts too
    assert not shifted(0, 0, 1000, 900)  # nothing recent: nothing to tell
    assert not shifted(100, 50, 100, 50)  # one memory (or a young route): the two are the same evidence


def strategy_on(config_text: str, book: ProfileBook, clock: list[float]) -> tuple[LearnedStrategy, RouteConfig]:
    config = parse_config(config_text)
    strategy = LearnedStrategy(book, {m.name: m for m in config.models}, lambda: clock[0], np.random.default_rng(1))
    return strategy, config.routes[0]


TWO_ARMS = """
providers: [{name: sim, type: simulated}]
models: [{name: a, provider: sim}, {name: b, provider: sim}]
feedback: {metrics: [{name: thumbs, type: boolean}]}
routes:
  - name: r
    strategy: learned
    targets: [{model: a}, {model: b}]
    learned: {quality: thumbs, min_feedback: 10, half_life_s: 100, memory_half_life_s: 100000}
"""


def test_an_arm_is_estimated_from_its_long_memory_until_its_recent_feedback_shifts() -> None:
    clock = [0.0]
    book = ProfileBook({"r": 100.0}, memory_half_lives={"r": 100_000.0})
    strategy, route = strategy_on(TWO_ARMS, book, clock)
    kind = "tokens<64 lang=und"
    for t in range(1000):  # a good for 1,000 s, b middling
        book.observe_quality(("r", kind, "a"), float(t), 1.0 if t % 10 else 0.0)
        book.observe_quality(("r", kind, "b"), float(t), 0.5)
    clock[0] = 1000.0
    arms, _ = strategy.decide(route, kind, ["a", "b"], 2, None)
    assert arms[0].feedback == pytest.approx(1000, rel=0.01)  # the long memory: all of it, barely decayed
    assert arms[0].quality == pytest.approx(0.9, abs=0.01)
    for t in range(1000, 1100):  # a turns bad
        book.observe_quality(("r", kind, "a"), float(t), 0.0)
        book.observe_quality(("r", kind, "b"), float(t), 0.5)
    clock[0] = 1100.0
    arms, odds = strategy.decide(route, kind, ["a", "b"], 2, None)
    assert arms[0].feedback < 250  # the recent memory alone: a's past fades with the 100 s half-life
    assert arms[0].quality < 0.5
    assert arms[1].feedback > 1000  # b did not move: still its long memory
    assert odds.probabilities["b"] > 0.5


def test_one_memory_when_the_route_keeps_no_long_one() -> None:
    book = ProfileBook({"r": 100.0})
    strategy, route = strategy_on(TWO_ARMS, book, [100.0])
    book.observe_quality(("r", "t", "a"), 0.0, 1.0)
    arms, _ = strategy.decide(route, "t", ["a"], 2, None)
    assert arms[0].feedback == pytest.approx(0.5)  # the recent memory, decayed by one half-life


def test_chances_are_kept_while_the_estimates_hold_still_and_the_wait_stretches() -> None:
    clock = [0.0]
    book = ProfileBook({"r": 86_400.0})
    strategy, route = strategy_on(TWO_ARMS, book, clock)
    request = ChatRequest("r", [Message("user", "hello")])
    features = RequestFeatures(request, team="", streaming=False, count_prompt=lambda _m: 2, prompt_bound=2)
    kind = "tokens<64 lang=und"
    for _ in range(2000):  # a far ahead of b: b's gap is past the cap, so small moves do not matter
        book.observe_quality(("r", kind, "a"), 0.0, 1.0)
        book.observe_quality(("r", kind, "b"), 0.0, 0.0)

    def feedback_seen() -> float:
        return strategy.choose(route, features, "", ["a", "b"])[2].arms[0].feedback

    refreshes = []
    seen = feedback_seen()
    for call in range(1, 16 * (1 + 2 + 4 + 4) + 1):
        book.observe_quality(("r", kind, "a"), 0.0, 1.0)  # one more rating between calls
        now = feedback_seen()
        if now != seen:
            refreshes.append(call)
            seen = now
    # Refreshed after 16 calls, then 32, 64 and 64 (the stretch's cap): the estimates held still each time.
    assert refreshes == [16, 48, 112, 176]
    for _ in range(5000):  # now b is the better: the chances are drawn again and the stretch starts again
        book.observe_quality(("r", kind, "a"), 0.0, 0.0)
        book.observe_quality(("r", kind, "b"), 0.0, 1.0)
    calls = 1
    while feedback_seen() == seen:  # seen at the next refresh, at most 64 calls on
        calls += 1
        book.observe_quality(("r", kind, "a"), 0.0, 0.0)
    assert calls <= 64
    decision = strategy.choose(route, features, "", ["a", "b"])[2]
    assert decision.probabilities["b"] > 0.5
    seen = decision.arms[0].feedback
    calls = 1
    while feedback_seen() == seen:
        calls += 1
        book.observe_quality(("r", kind, "a"), 0.0, 1.0)
    assert calls == 15  # back to a refresh every 16 calls (the decision above was the first since the refresh)
