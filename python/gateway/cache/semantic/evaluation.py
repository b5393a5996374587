"""How well a cosine threshold, alone or with verify, serves labelled prompt pairs: precision, recall, per kind.

A pair is (cached, asked, same, kind); "served" means the cache would answer `asked` with `cached`'s answer. Precision
is the share of served pairs that were labelled same (a wrong answer served is the cost that matters); recall the
share of same pairs that were served. Per kind, the served share is a hit rate for kinds labelled same and a false
hit rate for kinds labelled different. Used by tests/cache/test_near_miss.py and benches/cache/bench_semantic.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from gateway.cache.semantic.embedder import Embedder
from gateway.cache.semantic.matcher import SemanticMatcher

BATCH = 32

Serves = Callable[[str, str, float], bool]
"""(cached, asked, cosine) -> whether the cache would serve cached's answer to asked."""


class LabelledPair(Protocol):
    @property
    def cached(self) -> str: ...
    @property
    def asked(self) -> str: ...
    @property
    def same(self) -> bool: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True, slots=True)
class KindScore:
    same: bool
    pairs: int
    served: int

    @property
    def rate(self) -> float:
        return self.served / self.pairs if self.pairs else 0.0


@dataclass(frozen=True, slots=True)
class Scores:
    label: str
    """What decided: "cosine >= 0.85", "matcher (0.80, rewording 0.90)"."""
    true_hits: int
    false_hits: int
    missed: int
    kinds: dict[str, KindScore] = field(default_factory=dict)
    false_hit_examples: tuple[tuple[str, str, str], ...] = ()
    """(kind, cached, asked) of pairs labelled different that were served: what to look at first."""

    @property
    def precision(self) -> float:
        served = self.true_hits + self.false_hits
        return self.true_hits / served if served else 1.0

    @property
    def recall(self) -> float:
        positives = self.true_hits + self.missed
        return self.true_hits / positives if positives else 0.0

    def table(self) -> str:
        """Per-kind lines for a report: kind, label, served/pairs and the rate."""
        lines = [
            f"{self.label}: precision {self.precision:.3f}, recall {self.recall:.3f} ({self.true_hits} right hits, "
            f"{self.false_hits} wrong hits, {self.missed} missed)"
        ]
        for kind, score in self.kinds.items():
            label = "same" if score.same else "diff"
            what = "hit rate" if score.same else "false hits"
            lines.append(f"  {kind:<18} {label}  {score.served:>3}/{score.pairs:<3} {what} {score.rate:.2f}")
        return "\n".join(lines)


def pair_similarities(embedder: Embedder, pairs: Sequence[LabelledPair]) -> np.ndarray:
    """Cosine of each pair's two prompts; each distinct text embedded once, in batches."""
    # Like lengths batch with less padding; ties by text, so batches (which move int8 vectors a little) never vary.
    texts = sorted({t for p in pairs for t in (p.cached, p.asked)}, key=lambda t: (len(t), t))
    vectors = np.vstack([embedder.embed(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)])
    row = {text: i for i, text in enumerate(texts)}
    cached = vectors[[row[p.cached] for p in pairs]]
    asked = vectors[[row[p.asked] for p in pairs]]
    similarities: np.ndarray = np.einsum("ij,ij->i", cached, asked)
    return similarities


def score_pairs(pairs: Sequence[LabelledPair], similarities: Sequence[float], serves: Serves, label: str) -> Scores:
    """Scores serving each pair when `serves(cached, asked, cosine)` says so."""
    if len(pairs) != len(similarities):
        raise ValueError(f"{len(pairs)} pairs but {len(similarities)} similarities")
    true_hits = false_hits = missed = 0
    counts: dict[str, list[int]] = {}
    labels: dict[str, bool] = {}
    examples: list[tuple[str, str, str]] = []
    for pair, similarity in zip(pairs, similarities, strict=True):
        served = serves(pair.cached, pair.asked, similarity)
        tally = counts.setdefault(pair.kind, [0, 0])
        tally[0] += 1
        tally[1] += served
        labels[pair.kind] = pair.same
        if pair.same and served:
            true_hits += 1
        elif pair.same:
            missed += 1
        elif served:
            false_hits += 1
            examples.append((pair.kind, pair.cached, pair.asked))
    kinds = {kind: KindScore(labels[kind], n, served) for kind, (n, served) in counts.items()}
    return Scores(label, true_hits, false_hits, missed, kinds, tuple(examples))


def score_matcher(pairs: Sequence[LabelledPair], similarities: Sequence[float], matcher: SemanticMatcher) -> Scores:
    """The full decision: cosine threshold, verify, and the rewording threshold."""
    label = f"cosine >= {matcher.threshold:.2f} + verify"
    if matcher.model is not None:
        label += f" + {matcher.model.version}"
    if matcher.rewording_threshold is not None:
        label += f" (rewordings at {matcher.rewording_threshold:.2f})"
    return score_pairs(pairs, similarities, lambda c, a, s: matcher.accepts(c, a, s).same, label)


def score_threshold(pairs: Sequence[LabelledPair], similarities: Sequence[float], threshold: float) -> Scores:
    """The baseline without verify: serve whatever is close enough."""
    return score_pairs(pairs, similarities, lambda _c, _a, s: s >= threshold, f"cosine >= {threshold:.2f} alone")
