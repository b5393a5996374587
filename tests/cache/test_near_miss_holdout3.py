"""The third, held-out near-miss corpus itself: its size, every kind at its minimum (the first corpus's minimums
scaled by 0.7, rounded up), no duplicate or empty pair, each label the one its kind implies, the same kinds as the
earlier sets, and no prompt shared with either of them."""

from __future__ import annotations

import math
import re
from collections import Counter

from tests.cache import near_miss_corpus, near_miss_holdout
from tests.cache.near_miss_holdout3 import KINDS, PAIRS

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
MINIMUMS = {kind: math.ceil(n * 0.7) for kind, n in BASE_MINIMUMS.items()}
HIT_KINDS = frozenset({"paraphrase", "typo", "register", "reordered", "multilingual_same"})


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


def test_size() -> None:
    assert len(PAIRS) >= 300


def test_kinds_match_the_earlier_sets() -> None:
    assert KINDS == near_miss_corpus.KINDS == near_miss_holdout.KINDS
    assert set(KINDS) == set(MINIMUMS)


def test_every_kind_meets_its_scaled_minimum() -> None:
    counts = Counter(pair.kind for pair in PAIRS)
    assert set(counts) <= set(KINDS)
    short = {kind: (counts[kind], need) for kind, need in MINIMUMS.items() if counts[kind] < need}
    assert not short


def test_no_duplicate_pairs() -> None:
    keys = Counter((pair.cached, pair.asked) for pair in PAIRS)
    assert [key for key, n in keys.items() if n > 1] == []
    assert all(pair.cached != pair.asked for pair in PAIRS)


def test_no_empty_strings() -> None:
    assert all(pair.cached.strip() and pair.asked.strip() and pair.kind for pair in PAIRS)


def test_labels_follow_kinds() -> None:
    wrong = [pair for pair in PAIRS if pair.same != (pair.kind in HIT_KINDS)]
    assert wrong == []


def test_no_prompt_shared_with_the_earlier_sets() -> None:
    earlier = {
        _norm(text)
        for module in (near_miss_corpus, near_miss_holdout)
        for pair in module.PAIRS
        for text in (pair.cached, pair.asked)
    }
    shared = [text for pair in PAIRS for text in (pair.cached, pair.asked) if _norm(text) in earlier]
    assert shared == []
