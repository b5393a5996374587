"""The near-miss corpus itself: its size, every kind present at its minimum, no duplicate or empty pair, and each
pair's label the one its kind implies."""

from __future__ import annotations

from collections import Counter

from tests.cache.near_miss_corpus import KINDS, PAIRS

MINIMUMS = {
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
HIT_KINDS = {"paraphrase", "typo", "register", "reordered", "multilingual_same"}


def test_corpus_has_at_least_440_pairs() -> None:
    assert len(PAIRS) >= 440


def test_kinds_are_the_specified_ones_and_each_meets_its_minimum() -> None:
    assert set(KINDS) == set(MINIMUMS)
    assert len(KINDS) == len(set(KINDS))
    counts = Counter(p.kind for p in PAIRS)
    assert set(counts) <= set(KINDS), set(counts) - set(KINDS)
    short = {k: counts[k] for k in KINDS if counts[k] < MINIMUMS[k]}
    assert not short, short


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


def test_hits_are_a_fair_share_of_the_set() -> None:
    share = sum(p.same for p in PAIRS) / len(PAIRS)
    assert 0.35 <= share <= 0.55, share
