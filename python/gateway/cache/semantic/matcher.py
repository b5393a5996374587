"""The semantic cache's decision: which candidate from the vector search, if any, may answer the asked prompt.

A candidate must be close (cosine >= threshold) and verify must agree that it asks for the same thing. Candidates
come best first from `VectorIndex.search`; the first of the `top_k` that passes wins.

The two signals split the work by what each reads well. Verify catches what embeddings blur (5 vs 50 km, enable vs
disable, Paris to Rome vs Rome to Paris, an added "without recursion"); the cosine says the two prompts are about
the same thing at all. Measured on labelled near-miss pairs (tests/cache/test_near_miss.py prints them per kind):
at 0.80 MiniLM keeps ~90% of true paraphrases above the threshold, and verify removes the near misses.

`rewording_threshold` (off by default) also serves a candidate whose only difference is words replaced on both
sides (`Verdict.rewording`: "symptoms" / "signs"), if its cosine reaches that value. It lifts recall (+4 points on
the corpus at 0.90) but serves near misses that swap one noun, which MiniLM scores 0.91-0.95: "time complexity" /
"space complexity", "sun rise" / "sun set", "sort by value" / "sort by key". So it stays off unless a deployment
prefers recall.

A candidate that no hard rule of verify vetoes (`verify.VETOES`: numbers, units, operators, versions, negation,
scope, opposites, availability, time frames, names, languages, direction, order) is then judged by the learned
verdict (pair_model.py), which reads the cosine, verify's findings and how the words align: it serves rewordings that
share few words, which verify alone turns down as added or dropped constraints. `model=None` keeps verify's rules alone.

The default threshold is the shipped model's floor (0.65 for verify-pair-v4): the lowest cosine it was trained to
judge. Rewordings that share few words sit at 0.6-0.8 in MiniLM, where a threshold of 0.80 never let the model see
them. verify's rules alone were measured at 0.80, where they leave the rest to the cosine: with `model=None` pass
`threshold=RULES_THRESHOLD`.

No I/O: the caller embeds, searches and counts the rejection reasons in its metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from gateway.cache.semantic.pair_features import pair_features
from gateway.cache.semantic.pair_model import PairModel, shipped_pair_model
from gateway.cache.semantic.verify import VETOES, Verdict, compare

DEFAULT_THRESHOLD: Final = 0.65
"""verify-pair-v4's floor (tests/cache/test_pair_model.py checks that the two agree)."""
RULES_THRESHOLD: Final = 0.80
"""The threshold verify's rules alone were measured at (docs/benchmarks.md)."""
DEFAULT_TOP_K: Final = 3


@dataclass(frozen=True, slots=True)
class Candidate:
    """One search result: the cache entry, its cosine to the asked prompt, and the prompt it was stored under."""

    entry_id: int
    similarity: float
    prompt: str


@dataclass(frozen=True, slots=True)
class Match:
    """What the matcher decided: the entry that may answer (or None), and why the others were turned down."""

    entry_id: int | None
    similarity: float | None
    rejections: Counter[str] = field(default_factory=Counter)
    """Verify's rejections by reason kind ("number", "negation", ...) among candidates above the threshold."""
    reasons: tuple[str, ...] = ()
    """The full reasons, in candidate order, for logs and traces."""

    @property
    def hit(self) -> bool:
        return self.entry_id is not None


class SemanticMatcher:
    """Picks the first of the `top_k` best candidates whose cosine reaches `threshold`, that no hard rule vetoes and
    that the learned verdict accepts: `model`, the shipped one by default (with `model=None`: that verify accepts, or,
    when `rewording_threshold` is set, whose only difference is a rewording and whose cosine reaches it)."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        top_k: int = DEFAULT_TOP_K,
        rewording_threshold: float | None = None,
        model: PairModel | Literal["shipped"] | None = "shipped",
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a cosine, within [-1, 1]; got {threshold}")
        if rewording_threshold is not None and not threshold <= rewording_threshold <= 1.0:
            raise ValueError(f"rewording_threshold must be within [threshold, 1]; got {rewording_threshold}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.threshold = threshold
        self.top_k = top_k
        self.rewording_threshold = rewording_threshold
        self.model = shipped_pair_model() if model == "shipped" else model

    def accepts(self, cached: str, asked: str, similarity: float) -> Verdict:
        """The verdict on one candidate: same when it may be served."""
        if similarity < self.threshold:
            return Verdict(False, f"similarity: {similarity:.3f} < {self.threshold:.3f}")
        verdict = compare(cached, asked)
        if verdict.kind in VETOES:
            return verdict
        if self.model is not None:
            probability = self.model.probability(pair_features(cached, asked, similarity, verdict))
            if probability >= self.model.threshold:
                return Verdict(True)
            return Verdict(False, f"model: {probability:.3f} < {self.model.threshold:.2f} ({verdict.reason or 'same'})")
        if verdict.rewording and self.rewording_threshold is not None and similarity >= self.rewording_threshold:
            return Verdict(True)
        return verdict

    def match(self, asked: str, candidates: Iterable[tuple[int, float, str] | Candidate]) -> Match:
        """`candidates` are (entry_id, cosine, cached_prompt) best first, as the vector search returns them."""
        rejections: Counter[str] = Counter()
        reasons: list[str] = []
        for i, item in enumerate(candidates):
            if i >= self.top_k:
                break
            candidate = item if isinstance(item, Candidate) else Candidate(*item)
            if candidate.similarity < self.threshold:
                continue
            verdict = self.accepts(candidate.prompt, asked, candidate.similarity)
            if verdict.same:
                return Match(candidate.entry_id, candidate.similarity, rejections, tuple(reasons))
            rejections[verdict.kind] += 1
            reasons.append(verdict.reason)
        return Match(None, None, rejections, tuple(reasons))
