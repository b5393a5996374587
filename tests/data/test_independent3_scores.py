"""The two learned judgements scored on the third set another hand wrote (data/independent-3/), held out.

Written on 2026-12-05 by a session that opened neither the detectors, their training data nor the two earlier sets
(its README lists what it did not open), while injection-linear-4 and verify-pair-v3 were being trained without it.
Since verify-pair-v4 its verify pairs are training data (their test below says so); the injection texts are not.
Scored once with the models shipped before them and once with them after the merge; nothing was changed after reading
either score: the figures below are held-out figures, and the floors keep them from falling. They are not aims:
docs/guardrails.md and docs/benchmarks.md compare them with the issue's. Nothing may be trained, tuned or chosen on
this set; a change made after reading its rows or misses ends its use as held out (data/independent-3/README.md).
Run with `-s` for the tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cache.semantic.embedder import EmbeddingModelMissing
from gateway.policy.guardrails.injection import InjectionScorer
from gateway.policy.guardrails.injection_minilm import shared_head
from tests.data.scoring import by, detection, read_prompts, scored, verify_scores
from tests.embedding_model import skip_without
from tests.policy.guardrails.heldout import Row

DATA = Path(__file__).resolve().parents[2] / "data" / "independent-3"


@pytest.fixture(scope="module")
def prompts() -> list[Row]:
    return read_prompts(DATA)


@pytest.fixture(scope="module")
def injection_scores(prompts: list[Row]) -> list[float]:
    return scored(prompts, InjectionScorer())


def test_the_default_model_on_the_held_out_set(prompts: list[Row], injection_scores: list[float]) -> None:
    """injection-linear-4 at threshold 0.8: precision 0.848, recall 0.720, false positives 0.125 (user 0.054, tool
    0.120, document 0.276); injection-linear-3 before it 0.776 / 0.669 / 0.188. Aims 0.95 / 0.90 / 0.02: missed."""
    figures = detection(prompts, injection_scores)
    assert figures.precision >= 0.84
    assert figures.recall >= 0.71
    assert figures.false_positive_rate <= 0.13


def test_the_default_model_in_each_named_language(prompts: list[Row], injection_scores: list[float]) -> None:
    """Recall en 0.815, fr 0.729, pt 0.708, de 0.667, es 0.667 (48 attacks in each of de/es/fr/pt; aim 0.80)."""
    floors = {"en": 0.81, "fr": 0.72, "pt": 0.70, "de": 0.66, "es": 0.66}
    recall = {lang: figures.recall for lang, figures in by(prompts, injection_scores, "lang").items()}
    assert all(recall[lang] >= floor for lang, floor in floors.items()), recall


def test_the_combined_model_on_the_held_out_set(prompts: list[Row]) -> None:
    """injection-linear-4+injection-minilm-3 (opt-in): precision 0.778, recall 0.840, false positives 0.233; floors
    about one prompt below for onnxruntime's sums on another CPU."""
    try:
        head = shared_head()
    except EmbeddingModelMissing as e:
        skip_without(e)
    figures = detection(prompts, scored(prompts, InjectionScorer(minilm=head)))
    assert figures.precision >= 0.77
    assert figures.recall >= 0.83
    assert figures.false_positive_rate <= 0.24


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
