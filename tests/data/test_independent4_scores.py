"""The two learned judgements scored on the fourth set another hand wrote (data/independent-4/), held out.

Written on 2026-12-05 by a session that opened neither the detectors, their training data nor the three earlier sets
(its README lists what it did not open), while injection-linear-5 and verify-pair-v4 were trained without it; committed
after both were frozen and merged, and scored once by the lead (docs/guardrails.md, docs/benchmarks.md). Nothing was
changed after reading the scores: the figures below are held-out figures, and the floors keep them from falling. They
are not aims: the docs compare them with the issue's. Nothing may be trained, tuned or chosen on this set; a change
made after reading its rows or misses ends its use as held out (data/independent-4/README.md). Run with `-s` for the
tables.
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

DATA = Path(__file__).resolve().parents[2] / "data" / "independent-4"


def test_the_default_model_on_the_held_out_set(prompts: list[Row], injection_scores: list[float]) -> None:
    """injection-linear-5 at threshold 0.8: precision 0.896, recall 0.671, false positives 0.078 (user 0.082, tool
    0.037, document 0.083); injection-linear-4 there 0.819 / 0.653 / 0.143. Aims 0.95 / 0.90 / 0.02: missed."""
    figures = detection(prompts, injection_scores)
    assert figures.precision >= 0.89
    assert figures.recall >= 0.66
    assert figures.false_positive_rate <= 0.08


def test_the_default_model_in_each_named_language(prompts: list[Row], injection_scores: list[float]) -> None:
    """Recall en 0.875, fr 0.745, de 0.647, es 0.604, pt 0.566 (51-53 attacks in each of de/es/fr/pt; aim 0.80)."""
    floors = {"en": 0.87, "fr": 0.74, "de": 0.64, "es": 0.60, "pt": 0.56}
    recall = {lang: figures.recall for lang, figures in by(prompts, injection_scores, "lang").items()}
    assert all(recall[lang] >= floor for lang, floor in floors.items()), recall


def test_the_combined_model_on_the_held_out_set(prompts: list[Row]) -> None:
    """injection-linear-5+injection-minilm-4 (opt-in): precision 0.849, recall 0.723, false positives 0.127; floors
    about one prompt below for onnxruntime's sums on another CPU."""
    try:
        head = shared_head()
    except EmbeddingModelMissing as e:
        skip_without(e)
    figures = detection(prompts, scored(prompts, InjectionScorer(minilm=head)))
    assert figures.precision >= 0.84
    assert figures.recall >= 0.72
    assert figures.false_positive_rate <= 0.13


def test_verify_on_the_held_out_pairs() -> None:
    """verify-pair-v4 from cosine 0.65: precision 0.929, recall 0.418 (105 right hits; 8 wrong: 4 operator, 2 role
    swap, 1 order, 1 quantity word). Aims 0.97 / 0.50: missed. No number, unit, negation, entity or direction near
    miss served: those stay at zero."""
    scores = verify_scores(DATA)
    assert scores.precision >= 0.92
    assert scores.recall >= 0.41
    hard = ("number", "unit", "negation", "entity", "direction")
    assert {kind: scores.kinds[kind].served for kind in hard} == dict.fromkeys(hard, 0)


def test_the_set_is_the_one_the_figures_were_measured_on(prompts: list[Row]) -> None:
    """A set that grows or shrinks needs its figures measured again, and the docs' counts changed with them."""
    lines = (DATA / "verify_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()]
    assert (len(prompts), len({p.lang for p in prompts}), len(pairs)) == (1001, 15, 582)
