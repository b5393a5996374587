"""Scoring a set another hand wrote (data/independent*/injection.jsonl) the one way every such test does."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.cache.semantic.evaluation import Scores, pair_similarities, score_matcher
from gateway.cache.semantic.matcher import SemanticMatcher
from gateway.policy.guardrails.injection import InjectionScorer
from tests.data.independent_pairs import verify_pairs
from tests.embedding_model import skip_without
from tests.policy.guardrails.heldout import Figures, Row, measure

THRESHOLD = 0.8
"""The injection guardrail's documented default threshold."""


def read_prompts(directory: Path) -> list[Row]:
    lines = (directory / "injection.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Row(r["text"], r["label"] == "attack", r["family"], r["lang"], r["channel"]) for r in rows]


def row(label: str, figures: Figures) -> str:
    return (
        f"| {label} | {figures.attacks} | {figures.prompts - figures.attacks} | {figures.precision:.3f}"
        f" | {figures.recall:.3f} | {figures.false_positive_rate:.3f} |"
    )


def detection(prompts: list[Row], scores: list[float]) -> Figures:
    return measure(scores, prompts, THRESHOLD)


def by(prompts: list[Row], scores: list[float], field: str) -> dict[str, Figures]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        groups[getattr(p, field)].append(i)
    return {k: detection([prompts[i] for i in ix], [scores[i] for i in ix]) for k, ix in sorted(groups.items())}


def scored(prompts: list[Row], scorer: InjectionScorer) -> list[float]:
    """Each prompt's score, and the tables for `-s`."""
    scores = [scorer.score(p.text).score for p in prompts]
    header = "| {} | attacks | benign | precision | recall | false positives |\n| --- | --- | --- | --- | --- | --- |"
    print(f"\ninjection, {scorer.version}, threshold {THRESHOLD}")
    print(header.format("set") + "\n" + row("all", detection(prompts, scores)))
    for field in ("lang", "role", "family"):
        print("\n" + header.format(field))
        for name, figures in by(prompts, scores, field).items():
            print(row(name, figures))
    return scores


def verify_scores(directory: Path) -> Scores:
    """The semantic cache's verdict on a set's verify pairs, as configured by default (skips without MiniLM), and
    its table for `-s`."""
    try:
        embedder = Embedder()
    except EmbeddingModelMissing as e:
        skip_without(e)
    pairs = verify_pairs(directory)
    scores = score_matcher(pairs, pair_similarities(embedder, pairs).tolist(), SemanticMatcher())
    print("\n" + scores.table())
    return scores
