"""The semantic cache's whole decision (cosine >= threshold, verify's vetoes, the learned verdict) on labelled
near-miss pairs.

The corpus (tests/cache/near_miss_corpus.py, written apart from the verifier, which was later adjusted after a first
run on it, and the learned verdict's training set) is embedded with the real model; a pair is served when the default
SemanticMatcher accepts it. The held-out sets (near_miss_holdout.py, near_miss_holdout3.py), never trained on, keep
their measured floors, beside verify's rules alone. The threshold-only baseline (a cache without verify) is computed
and printed. OWN_PAIRS (near_miss_probes.py) probe one-word swaps at a high cosine; they show why the matcher's
rewording threshold stays off. Run with `-s` for the per-kind tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.cache.semantic.evaluation import Scores, pair_similarities, score_matcher, score_threshold
from gateway.cache.semantic.matcher import RULES_THRESHOLD, SemanticMatcher
from tests.cache import near_miss_corpus, near_miss_holdout, near_miss_holdout3
from tests.cache.near_miss_probes import OWN_PAIRS
from tests.embedding_model import skip_without

BASELINE_THRESHOLDS = (0.80, 0.85, 0.90, 0.95)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return Embedder()
    except EmbeddingModelMissing as e:
        skip_without(e)


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    return near_miss_corpus


@pytest.fixture(scope="module")
def corpus_similarities(embedder: Embedder, corpus: ModuleType) -> np.ndarray:
    return pair_similarities(embedder, corpus.PAIRS)


def test_threshold_and_verify_reach_the_precision_and_recall_aims(
    corpus: ModuleType, corpus_similarities: np.ndarray, record_property: Callable[[str, object], None]
) -> None:
    """The corpus the learned verdict was trained on: a regression floor, not a measure of unseen text (in-sample
    verify-pair-v4 1.000 / 0.791, v3 1.000 / 0.796, v2 1.000 / 0.668, v1 1.000 / 0.758; verify's rules alone 1.000 /
    0.607)."""
    scores = score_matcher(corpus.PAIRS, corpus_similarities.tolist(), SemanticMatcher())
    print("\n" + scores.table())
    _record(record_property, "pipeline", scores)
    assert scores.precision >= 0.97, _wrong_hits(scores)
    assert scores.recall >= 0.79


@pytest.mark.parametrize(
    ("held_out", "precision", "recall"),
    [(near_miss_holdout, 0.97, 0.63), (near_miss_holdout3, 0.97, 0.62)],
    ids=["holdout", "holdout3"],
)
def test_held_out_pairs_keep_their_measured_floor(
    embedder: Embedder, held_out: ModuleType, precision: float, recall: float
) -> None:
    """Sets written by other hands, never in the learned verdict's training. verify-pair-v4 scores 0.990 / 0.638 and
    1.000 / 0.621 (one unrelated question served on the first); they chose its precision target, so its threshold
    (one step lower served a negation near miss on the second: docs/benchmarks.md, "the learned verdict, v4", kinds
    read, no pair), and kept its floor at 0.65 and its size. verify-pair-v3 scored
    0.990 / 0.619 and 1.000 / 0.608 (one unrelated question served; corpus 3's Spanish "activo" / "desactivo", seen,
    is vetoed since by the "des-" prefix), but these sets validated
    its floor, precision target and size (an earlier v3 candidate served unrelated questions and a negation here:
    docs/benchmarks.md, "the learned verdict, v3"; their wrong answers' kinds were read, no pair), so since v3 they
    are validation sets, not held out; data/independent-3 is the held-out judge. verify-pair-v2
    scored 1.000 / 0.506 and 0.988 / 0.529 (one multilingual near miss served), where v1 scored 1.000 / 0.625 and
    1.000 / 0.516, verify's rules alone 1.000 / 0.319 and 1.000 / 0.294 and a threshold alone 0.45-0.49: the floors
    fall for the first set, an explained regression (docs/benchmarks.md, "the learned verdict, v2": two earlier v2
    candidates were scored here too, each chosen without these sets). Their three wrong answers under v1's first
    model ("in stock" / "out of stock", Dutch "aan" / "uit", a Spanish "del X al Y" swapped) were read and vetoed by
    rules since: for those kinds the sets are no longer held out. Asserted: those floors; no wrong answer of another
    number, version, unit or direction; no more wrong answers of a negation than the rules alone serve. A set is
    held out only while no change made after its first scoring has touched it: editing it, tuning on its results or
    reading its misses to change the code would end its use."""
    similarities = pair_similarities(embedder, held_out.PAIRS).tolist()
    scores = score_matcher(held_out.PAIRS, similarities, SemanticMatcher())
    rules = score_matcher(held_out.PAIRS, similarities, SemanticMatcher(RULES_THRESHOLD, model=None))
    print("\n" + scores.table() + "\n" + rules.table().splitlines()[0])
    assert scores.precision >= precision, _wrong_hits(scores)
    assert scores.recall >= recall
    assert scores.recall > rules.recall + 0.15
    wrong = Counter(kind for kind, _, _ in scores.false_hit_examples)
    assert not wrong.keys() & {"number", "version", "direction"}, _wrong_hits(scores)
    assert wrong["negation"] <= Counter(kind for kind, _, _ in rules.false_hit_examples)["negation"]
    assert scores.precision > score_threshold(held_out.PAIRS, similarities, 0.80).precision + 0.4


def test_threshold_alone_baseline_is_computed(
    corpus: ModuleType, corpus_similarities: np.ndarray, record_property: Callable[[str, object], None]
) -> None:
    for threshold in BASELINE_THRESHOLDS:
        scores = score_threshold(corpus.PAIRS, corpus_similarities.tolist(), threshold)
        print("\n" + scores.table())
        _record(record_property, f"cosine_only_{threshold:.2f}", scores)
        assert scores.true_hits + scores.false_hits + scores.missed > 0
        assert set(scores.kinds) == {p.kind for p in corpus.PAIRS}


def test_own_pairs_keep_precision_and_rewordings_would_not(embedder: Embedder) -> None:
    similarities = pair_similarities(embedder, OWN_PAIRS).tolist()
    default = score_matcher(OWN_PAIRS, similarities, SemanticMatcher())
    rules = score_matcher(OWN_PAIRS, similarities, SemanticMatcher(RULES_THRESHOLD, model=None))
    recall_first = SemanticMatcher(RULES_THRESHOLD, rewording_threshold=0.90, model=None)
    rewordings = score_matcher(OWN_PAIRS, similarities, recall_first)
    print("\n" + default.table() + "\n" + rules.table().splitlines()[0] + "\n" + rewordings.table().splitlines()[0])
    assert default.precision >= 0.97, _wrong_hits(default)
    assert rules.precision >= 0.97, _wrong_hits(rules)
    assert rewordings.false_hits > rules.false_hits, "one-word swaps at a high cosine: why rewordings stay off"


def _wrong_hits(scores: Scores) -> str:
    return "wrong hits:\n" + "\n".join(f"  {k}: {c!r} -> {a!r}" for k, c, a in scores.false_hit_examples)


def _record(record_property: Callable[[str, object], None], name: str, scores: Scores) -> None:
    record_property(f"{name}_precision", round(scores.precision, 4))
    record_property(f"{name}_recall", round(scores.recall, 4))
    for kind, score in scores.kinds.items():
        record_property(f"{name}_{kind}_served", f"{score.served}/{score.pairs}")
