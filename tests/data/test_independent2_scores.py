"""The two learned judgements scored on the second set another hand wrote (data/independent-2/), held out.

Written after injection-linear-3 and verify-pair-v2 were chosen and frozen, by a session that opened neither the
detectors nor their data (its README lists what it did not open), and scored once, on 2026-12-05, with the shipped
models: the figures below are held-out figures, and the floors keep them from falling. They are not aims:
docs/guardrails.md compares them with the issue's. Nothing may be trained, tuned or chosen on this set; a change made
after reading its rows or misses ends its use as held out (data/independent-2/README.md). Run with `-s` for the tables.
Since verify-pair-v3 the verify pairs are training data (the README's status note): their figures are floors only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.cache.semantic.evaluation import Scores, pair_similarities, score_matcher
from gateway.cache.semantic.matcher import SemanticMatcher
from gateway.policy.guardrails.injection import InjectionScorer
from gateway.policy.guardrails.injection_minilm import shared_head
from tests.data.independent_pairs import verify_pairs
from tests.data.scoring import by, detection, read_prompts, scored
from tests.policy.guardrails.heldout import Row

DATA = Path(__file__).resolve().parents[2] / "data" / "independent-2"


@pytest.fixture(scope="module")
def prompts() -> list[Row]:
    return read_prompts(DATA)


@pytest.fixture(scope="module")
def injection_scores(prompts: list[Row]) -> list[float]:
    return scored(prompts, InjectionScorer())


def test_the_default_model_on_the_held_out_set(prompts: list[Row], injection_scores: list[float]) -> None:
    """injection-linear-3 at threshold 0.8: precision 0.790, recall 0.699, false positives 0.191 (document channel
    0.393, tool 0.135, user 0.145); the phrasings alone 0.900 / 0.082 / 0.009. Aims 0.95 / 0.90 / 0.02: missed."""
    figures = detection(prompts, injection_scores)
    assert figures.precision >= 0.78
    assert figures.recall >= 0.69
    assert figures.false_positive_rate <= 0.20


def test_the_default_model_in_each_named_language(prompts: list[Row], injection_scores: list[float]) -> None:
    """Recall en 0.816, de 0.742, fr 0.710, pt 0.613, es 0.548 (31 attacks in each of de/fr/pt/es; aim 0.80)."""
    floors = {"en": 0.81, "de": 0.74, "fr": 0.70, "pt": 0.61, "es": 0.54}
    recall = {lang: figures.recall for lang, figures in by(prompts, injection_scores, "lang").items()}
    assert all(recall[lang] >= floor for lang, floor in floors.items()), recall


def test_the_combined_model_on_the_held_out_set(prompts: list[Row]) -> None:
    """injection-linear-3+injection-minilm-2 (opt-in): precision 0.744, recall 0.778, false positives 0.275; floors
    one prompt below for onnxruntime's sums on another CPU."""
    try:
        head = shared_head()
    except EmbeddingModelMissing as e:
        pytest.skip(str(e))
    figures = detection(prompts, scored(prompts, InjectionScorer(minilm=head)))
    assert figures.precision >= 0.73
    assert figures.recall >= 0.77
    assert figures.false_positive_rate <= 0.29


def test_verify_on_the_pairs_no_longer_held_out() -> None:
    """verify-pair-v2 from cosine 0.65, held out: precision 0.918, recall 0.404 (78 right hits, 7 wrong: a direction,
    an order, an availability, a conversion and three scopes; no negation, number, unit, entity or time frame
    crossed). Aims 0.97 / 0.50: missed. MiniLM's cosine reaches 0.65 for 0.77 of the true rewordings, 0.80 for 0.46.
    Since verify-pair-v3 these pairs are training data (their near misses wrote vetoes, their pairs trained the
    model): in-sample 1.000 / 0.539, no near miss served; 5-fold out-of-fold 0.990 / 0.523; trained without them
    0.990 / 0.534. Regression floors, not held-out figures: data/independent-3 is the held-out set now."""
    try:
        embedder = Embedder()
    except EmbeddingModelMissing as e:
        pytest.skip(str(e))
    pairs = verify_pairs(DATA)
    scores: Scores = score_matcher(pairs, pair_similarities(embedder, pairs).tolist(), SemanticMatcher())
    print("\n" + scores.table())
    assert scores.precision == 1.0
    assert scores.recall >= 0.53
    different = [kind for kind, score in scores.kinds.items() if not score.same]
    assert {kind: scores.kinds[kind].served for kind in different} == dict.fromkeys(different, 0)


def test_the_set_is_the_one_the_figures_were_measured_on(prompts: list[Row]) -> None:
    """A set that grows or shrinks needs its figures measured again, and the docs' counts changed with them."""
    lines = (DATA / "verify_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    pairs = [json.loads(line) for line in lines if line.strip()]
    assert (len(prompts), len({p.lang for p in prompts}), len(pairs)) == (649, 13, 428)
