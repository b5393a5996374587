"""The two learned judgements scored on the third set another hand wrote (data/independent-3/).

Written on 2026-12-05 by a session that opened neither the detectors, their training data nor the two earlier sets
(its README lists what it did not open), while injection-linear-4 and verify-pair-v3 were being trained without it,
and scored once with the models shipped before them and once with them after the merge (held out then): linear-4
0.848 / 0.720 / 0.125 (precision, recall, false positives; en 0.815, fr 0.729, pt 0.708, de 0.667, es 0.667), the
combined model 0.778 / 0.840 / 0.233. Its injection prompts were then read and, since injection-linear-5, train the
model: the injection figures here are training-set figures, floors against regression only, NOT held-out figures
(cross-fitted figures, each fifth scored by a model trained without it, are in the model card and docs/guardrails.md);
the fourth set, data/independent-4/, is the held-out judge. Since verify-pair-v4 its verify pairs are training data
too (their test below says so). Run with `-s` for the tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from gateway.cache.semantic.embedder import EmbeddingModelMissing
from gateway.policy.guardrails.injection import InjectionScorer
from gateway.policy.guardrails.injection_minilm import shared_head
from tests.data.scoring import by, detection, scored, verify_scores
from tests.embedding_model import skip_without
from tests.policy.guardrails.heldout import Row

DATA = Path(__file__).resolve().parents[2] / "data" / "independent-3"


def test_the_default_model_on_the_set(prompts: list[Row], injection_scores: list[float]) -> None:
    """injection-linear-5, trained on this set: precision 0.989, recall 0.971, false positives 0.011 (cross-fitted:
    0.897 / 0.716 / 0.080). injection-linear-4, held out: 0.848 / 0.720 / 0.125 (user 0.054, tool 0.120, document
    0.276)."""
    figures = detection(prompts, injection_scores)
    assert figures.precision >= 0.98
    assert figures.recall >= 0.97
    assert figures.false_positive_rate <= 0.02


def test_the_default_model_in_each_named_language(prompts: list[Row], injection_scores: list[float]) -> None:
    """injection-linear-5, trained on this set: en 0.982, de, es and pt 0.958, fr 0.938 (48 attacks in each of
    de/es/fr/pt; cross-fitted de 0.646, es 0.729, fr 0.771, pt 0.792, en 0.762). linear-4, held out: en 0.815,
    fr 0.729, pt 0.708, de 0.667, es 0.667."""
    floors = {"en": 0.98, "de": 0.95, "es": 0.95, "pt": 0.95, "fr": 0.93}
    recall = {lang: figures.recall for lang, figures in by(prompts, injection_scores, "lang").items()}
    assert all(recall[lang] >= floor for lang, floor in floors.items()), recall


def test_the_combined_model_on_the_set(prompts: list[Row]) -> None:
    """injection-linear-5+injection-minilm-4 (opt-in), trained on this set: precision 0.984, recall 0.987, false
    positives 0.015; floors about one prompt below for onnxruntime's sums on another CPU. linear-4+minilm-3, held
    out: 0.778 / 0.840 / 0.233."""
    try:
        head = shared_head()
    except EmbeddingModelMissing as e:
        skip_without(e)
    figures = detection(prompts, scored(prompts, InjectionScorer(minilm=head)))
    assert figures.precision >= 0.98
    assert figures.recall >= 0.98
    assert figures.false_positive_rate <= 0.02


def test_verify_on_the_pairs_no_longer_held_out() -> None:
    """Held out until verify-pair-v3: v3 from cosine 0.65 scored precision 0.944, recall 0.368 (85 right hits, 5
    wrong: a direction, a unit, an entity, an order, a superlative); verify-pair-v2 before it 0.909 / 0.260. Aims
    0.97 / 0.50: missed. MiniLM's cosine reaches 0.65 for 0.68 of the true rewordings. Since verify-pair-v4 these
    pairs are training data (their wrong answers wrote vetoes, their pairs trained the model): in-sample 1.000 /
    0.450 (104 of 231), no near miss served; 5-fold out-of-fold 1.000 / 0.424; trained without them 1.000 / 0.394
    (the vetoes written from their misses included). Regression floors, not held-out figures."""
    scores = verify_scores(DATA)
    assert scores.precision == 1.0
    assert scores.recall >= 0.45
    different = [kind for kind, score in scores.kinds.items() if not score.same]
    assert {kind: scores.kinds[kind].served for kind in different} == dict.fromkeys(different, 0)


def test_the_set_is_the_one_the_figures_were_measured_on(prompts: list[Row]) -> None:
    """A set that grows or shrinks needs its figures measured again, and the docs' counts changed with them."""
    lines = (DATA / "verify_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()]
    assert (len(prompts), len({p.lang for p in prompts}), len(pairs)) == (913, 13, 520)
