"""Relationships and cheaper alternatives on synthetic call facts whose associations are known."""

from __future__ import annotations

import random

import pytest

from gateway.insights.correlations import CallFacts, ShadowFacts, cheaper_models, relationships

NOON = 1_700_000_000 // 86_400 * 86_400 + 12 * 3600


def test_an_outcome_that_follows_a_feature_shows_a_large_effect_and_one_that_does_not_shows_none() -> None:
    rng = random.Random(4)
    calls = []
    for i in range(400):
        tokens = rng.choice([10, 100, 1000])
        # Latency grows with the prompt and is noise otherwise; the hour of day has nothing to do with it.
        latency = tokens * 2 + rng.gauss(0, 30)
        calls.append(CallFacts("m", NOON + (i % 4) * 6 * 3600, tokens, "", latency, 0.001, None))
    calls += [CallFacts("m", NOON, 10, "lang=fr", 5.0, 0.001, None)] * 3  # too few for a group of their own
    found = {(r.feature, r.outcome): r for r in relationships(calls)}
    length = found["prompt_tokens", "latency_ms"]
    assert length.eta_squared > 0.9
    assert [g.value for g in length.groups] == ["tokens<1024", "tokens<256", "tokens<64"]
    assert length.calls == 403
    long_group = length.groups[0]
    assert long_group.mean == pytest.approx(2000, abs=10)
    assert long_group.effect > 2  # far above the others, in pooled standard deviations
    hour = found["hour", "latency_ms"]
    assert hour.eta_squared < 0.03
    assert {g.value for g in hour.groups} == {"00-06 UTC", "06-12 UTC", "12-18 UTC", "18-24 UTC"}
    assert all(abs(g.effect) < 0.3 for g in hour.groups)
    # Cost never varies: no effect. No call has feedback: no quality. One language group only: no relationship.
    assert found["prompt_tokens", "cost_usd"].eta_squared == 0.0
    assert all(g.effect == 0.0 for g in found["prompt_tokens", "cost_usd"].groups)
    assert ("prompt_tokens", "quality") not in found
    assert ("language", "latency_ms") not in found


def rated(model: str, kind: str, good: float, n: int, cost: float, rng: random.Random) -> list[CallFacts]:
    return [CallFacts(model, NOON, 50, kind, 100.0, cost, float(rng.random() < good)) for _ in range(n)]


def test_cheaper_models_that_do_as_well_on_feedback_or_shadow_similarity() -> None:
    rng = random.Random(2)
    prices = {"cheap": 2.0, "dear": 20.0}
    calls = [
        *rated("dear", "code", 0.9, 600, 0.01, rng),
        *rated("cheap", "code", 0.9, 600, 0.001, rng),
        *rated("dear", "math", 0.95, 200, 0.01, rng),
        *rated("cheap", "math", 0.3, 200, 0.001, rng),
        # Summaries: only the dear model served them, without feedback; its copies to the cheap model agree.
        *[CallFacts("dear", NOON, 50, "summaries", 100.0, 0.01, None) for _ in range(100)],
        # Chat: copies that disagree.
        *[CallFacts("dear", NOON, 50, "chat", 100.0, 0.01, None) for _ in range(100)],
    ]
    shadows = [ShadowFacts("summaries", "dear", "cheap", rng.uniform(0.85, 0.95)) for _ in range(30)]
    shadows += [ShadowFacts("chat", "dear", "cheap", rng.uniform(0.2, 0.6)) for _ in range(30)]
    found = cheaper_models(calls, shadows, prices)
    by_type = {a.query_type: a for a in found.alternatives}
    assert set(by_type) == {"code", "math", "summaries", "chat"}
    assert all((a.model, a.cheaper_model) == ("dear", "cheap") for a in found.alternatives)
    code, math, summaries, chat = (by_type[k] for k in ("code", "math", "summaries", "chat"))
    assert code.basis == "feedback"
    assert code.as_well
    assert code.low <= 0 <= code.high
    assert code.evidence == 1200
    assert code.cost_ratio == pytest.approx(0.1)  # observed: both served code
    assert math.basis == "feedback"
    assert not math.as_well
    assert math.high < -0.5
    assert summaries.basis == "shadow"
    assert summaries.as_well
    assert summaries.evidence == 30
    assert summaries.cost_ratio == pytest.approx(0.1)  # from the prices: the cheap model never served summaries
    assert chat.basis == "shadow"
    assert not chat.as_well
    # Of 1800 typed calls, dear's code (600) and summaries (100) could go to cheap at a tenth of the cost.
    assert found.share_as_well == pytest.approx(700 / 1800)
    assert found.saving_usd == pytest.approx(700 * 0.01 * 0.9)


def test_too_little_evidence_says_nothing() -> None:
    rng = random.Random(1)
    calls = [*rated("dear", "code", 0.9, 4, 0.01, rng), *rated("cheap", "code", 0.9, 50, 0.001, rng)]
    found = cheaper_models(calls, [ShadowFacts("code", "dear", "cheap", 1.0)] * 4, {"cheap": 1.0, "dear": 10.0})
    assert found.alternatives == []
    assert found.share_as_well == 0.0
    assert cheaper_models([], [], {}).share_as_well == 0.0
