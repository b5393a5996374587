"""The second, held-out near-miss corpus itself: its size, every kind at its minimum (the first corpus's minimums
scaled by 0.7, rounded up), no duplicate or empty pair, each label the one its kind implies, the same kinds as the
first corpus, and no prompt shared with it."""

from __future__ import annotations

import math
from collections import Counter

from tests.cache import near_miss_corpus as first
from tests.cache.near_miss_holdout import KINDS, PAIRS

BASE_MINIMUMS = {
    "paraphrase": 60,
    "typo": 35,
    "register": 35,
    "reordered": 35,
    "multilingual_same": 12,
    "number": 35,
    "negation": 30,
    "entity": 35,
    "direction": 25,
    "version": 20,
    "scope": 30,
    "language_target": 15,
    "multilingual_diff": 10,
    "unrelated": 35,
}
MINIMUMS = {kind: math.ceil(0.7 * n) for kind, n in BASE_MINIMUMS.items()}
HIT_KINDS = {"paraphrase", "typo", "register", "reordered", "multilingual_same"}


def test_holdout_has_at_least_300_pairs() -> None:
    assert len(PAIRS) >= 300


def test_every_kind_meets_its_scaled_minimum() -> None:
    assert set(KINDS) == set(MINIMUMS)
    counts = Counter(p.kind for p in PAIRS)
    assert set(counts) <= set(KINDS), set(counts) - set(KINDS)
    short = {k: (counts[k], MINIMUMS[k]) for k in KINDS if counts[k] < MINIMUMS[k]}
    assert not short, short


def test_kinds_are_those_of_the_first_corpus() -> None:
    assert KINDS == first.KINDS


def test_no_duplicate_pairs() -> None:
    seen = Counter((p.cached, p.asked) for p in PAIRS)
    assert [k for k, n in seen.items() if n > 1] == []


def test_no_empty_or_identical_prompts() -> None:
    for p in PAIRS:
        assert p.cached.strip(), p
        assert p.asked.strip(), p
        assert p.cached != p.asked, p


def test_label_matches_kind() -> None:
    for p in PAIRS:
        assert p.same is (p.kind in HIT_KINDS), p


def test_no_prompt_is_shared_with_the_first_corpus() -> None:
    def norm(s: str) -> str:
        return " ".join(s.casefold().split())

    seen = {norm(s) for p in first.PAIRS for s in (p.cached, p.asked)}
    shared = sorted({s for p in PAIRS for s in (p.cached, p.asked) if norm(s) in seen})
    assert shared == []
