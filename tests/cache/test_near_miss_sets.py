"""The labelled near-miss sets themselves: size, every kind at its minimum (the held-out sets' minimums are the first
corpus's scaled by 0.7, rounded up), no duplicate, empty or identical pair, each label the one its kind implies, and
no prompt of a held-out set found in an earlier set."""

from __future__ import annotations

import math
import re
from collections import Counter
from types import ModuleType

import pytest

from tests.cache import near_miss_corpus, near_miss_holdout, near_miss_holdout3

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
HIT_KINDS = frozenset({"paraphrase", "typo", "register", "reordered", "multilingual_same"})
SETS = [(near_miss_corpus, 440, 1.0), (near_miss_holdout, 300, 0.7), (near_miss_holdout3, 300, 0.7)]
IDS = ["corpus", "holdout", "holdout3"]


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.casefold()).strip()


@pytest.mark.parametrize(("labelled", "size", "scale"), SETS, ids=IDS)
def test_size_kinds_and_minimums(labelled: ModuleType, size: int, scale: float) -> None:
    assert len(labelled.PAIRS) >= size
    assert set(labelled.KINDS) == set(MINIMUMS)
    counts = Counter(p.kind for p in labelled.PAIRS)
    assert set(counts) <= set(MINIMUMS), set(counts) - set(MINIMUMS)
    short = {k: counts[k] for k, n in MINIMUMS.items() if counts[k] < math.ceil(n * scale)}
    assert not short, short
    share = sum(p.same for p in labelled.PAIRS) / len(labelled.PAIRS)
    assert 0.35 <= share <= 0.55, share


@pytest.mark.parametrize(("labelled", "size", "scale"), SETS, ids=IDS)
def test_pairs_are_distinct_non_empty_and_labelled_by_kind(labelled: ModuleType, size: int, scale: float) -> None:
    seen = Counter((p.cached, p.asked) for p in labelled.PAIRS)
    assert [k for k, n in seen.items() if n > 1] == []
    for p in labelled.PAIRS:
        assert p.cached.strip(), p
        assert p.asked.strip(), p
        assert p.cached != p.asked, p
        assert p.same is (p.kind in HIT_KINDS), p


@pytest.mark.parametrize("position", [1, 2], ids=IDS[1:])
def test_a_held_out_set_shares_no_prompt_with_an_earlier_one(position: int) -> None:
    earlier = {
        _norm(text)
        for labelled, _, _ in SETS[:position]
        for pair in labelled.PAIRS
        for text in (pair.cached, pair.asked)
    }
    held_out = SETS[position][0]
    shared = sorted({text for pair in held_out.PAIRS for text in (pair.cached, pair.asked) if _norm(text) in earlier})
    assert shared == []
