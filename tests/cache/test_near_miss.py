"""The semantic cache's whole decision (cosine >= threshold AND verify) on labelled near-miss pairs.

The corpus (tests/cache/near_miss_corpus.py, written apart from the verifier, which was later adjusted after a first
run on it) is embedded with the real model; a pair is served when the default SemanticMatcher accepts it. Asserted:
precision >= 0.97 and recall >= 0.6. The held-out set (near_miss_holdout.py) keeps its measured floor. The
threshold-only baseline (a cache without verify) is computed and printed. OWN_PAIRS, written here after the first
corpus run, probe what the corpus has few of (one-word swaps at a high cosine); they show why the matcher's rewording
threshold stays off. Run with `-s` for the per-kind tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import pytest

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.cache.semantic.evaluation import LabelledPair, Scores, score_matcher, score_threshold
from gateway.cache.semantic.matcher import SemanticMatcher
from tests.cache import near_miss_corpus, near_miss_holdout, near_miss_holdout3

BASELINE_THRESHOLDS = (0.80, 0.85, 0.90, 0.95)
BATCH = 32


@dataclass(frozen=True, slots=True)
class Pair:
    cached: str
    asked: str
    same: bool
    kind: str


OWN_PAIRS = [
    # same
    Pair("How do I make a hard boiled egg?", "how to hard boil an egg", True, "paraphrase"),
    Pair(
        "What is the tallest mountain in the world?", "Which mountain is the highest in the world?", True, "paraphrase"
    ),
    Pair("How do I rename a file in Linux?", "linux command to rename a file", True, "paraphrase"),
    Pair("Can you explain what an API is?", "What is an API?", True, "register"),
    Pair("What's the time complexity of quicksort?", "time complexity of quick sort", True, "paraphrase"),
    Pair("How do I create a virtual environment in Python?", "how to make a python virtualenv", True, "paraphrase"),
    Pair("How do I check my Python version?", "how can i see which python version i have", True, "paraphrase"),
    Pair(
        "What are the health benefits of green tea?",
        "Is green tea good for your health? What are its benefits?",
        True,
        "paraphrase",
    ),
    Pair("How do I merge two branches in git?", "how to merge 2 git branches", True, "paraphrase"),
    Pair("What does HTML stand for?", "what is HTML short for", True, "paraphrase"),
    Pair("Recommend a good sci-fi book", "Can you recommend a good science fiction book?", True, "register"),
    Pair(
        "How to remove duplicates from a list in Python",
        "how to remove duplicates from a python list",
        True,
        "reordered",
    ),
    Pair("Translate 'thank you' into German", "How do you say 'thank you' in German?", True, "paraphrase"),
    Pair("How do I uninstall a package with pip?", "pip uninstall a package", True, "register"),
    Pair("what is the square root of 81", "sqrt of 81", True, "register"),
    Pair(
        "How do I convert a string to lowercase in JavaScript?",
        "javascript: convert string to lower case",
        True,
        "reordered",
    ),
    Pair("what is recursion in programming", "what is recurison in programing", True, "typo"),
    Pair("How many legs does a spider have?", "how many legs do spiders have", True, "paraphrase"),
    Pair("What is the boiling point of water in Fahrenheit?", "water boiling point fahrenheit", True, "register"),
    Pair("Wie spät ist es in Tokio?", "Wie spät ist es gerade in Tokio?", True, "multilingual_same"),
    # near misses
    Pair("How do I make a hard boiled egg?", "How do I make a soft boiled egg?", False, "antonym"),
    Pair("What is the tallest mountain in the world?", "What is the tallest mountain in Europe?", False, "entity"),
    Pair("How do I rename a file in Linux?", "How do I rename a file in Windows?", False, "entity"),
    Pair("What's the time complexity of quicksort?", "What's the space complexity of quicksort?", False, "scope"),
    Pair("What's the time complexity of quicksort?", "What's the time complexity of mergesort?", False, "entity"),
    Pair("How do I merge two branches in git?", "How do I merge three branches in git?", False, "number"),
    Pair("How do I merge two branches in git?", "How do I rebase two branches in git?", False, "scope"),
    Pair("Translate 'thank you' into German", "Translate 'thank you' into Dutch", False, "language"),
    Pair("How do I install a package with pip?", "How do I uninstall a package with pip?", False, "antonym"),
    Pair(
        "How do I convert a string to lowercase in JavaScript?",
        "How do I convert a string to uppercase in JavaScript?",
        False,
        "antonym",
    ),
    Pair("what is the square root of 81", "what is the cube root of 81", False, "scope"),
    Pair("How many legs does a spider have?", "How many eyes does a spider have?", False, "scope"),
    Pair(
        "What is the boiling point of water in Fahrenheit?",
        "What is the freezing point of water in Fahrenheit?",
        False,
        "scope",
    ),
    Pair("Is it safe to eat raw eggs?", "Is it safe to eat raw chicken?", False, "scope"),
    Pair("Best time to visit Japan in spring", "Best time to visit Japan in autumn", False, "alternative"),
    Pair("What time does the sun rise on June 21?", "What time does the sun set on June 21?", False, "antonym"),
    Pair("How to sort a dictionary by value in Python", "How to sort a dictionary by key in Python", False, "scope"),
    Pair(
        "How do I read a file line by line in Python?",
        "How do I write a file line by line in Python?",
        False,
        "antonym",
    ),
    Pair("What are the pros of remote work?", "What are the cons of remote work?", False, "antonym"),
    Pair("How do I get the current date in Java?", "How do I get the current time in Java?", False, "scope"),
    Pair(
        "How to connect to a MySQL database in Python",
        "How to connect to a PostgreSQL database in Python",
        False,
        "entity",
    ),
    Pair("Who painted the Mona Lisa?", "When was the Mona Lisa painted?", False, "scope"),
    Pair("How do I lose weight fast?", "How do I gain weight fast?", False, "antonym"),
    Pair("How to print the first 10 lines of a file", "How to print the last 10 lines of a file", False, "antonym"),
    Pair("Convert 100 yen to dollars", "Convert 100 dollars to yen", False, "direction"),
    Pair("How do I center a div vertically?", "How do I center a div horizontally?", False, "antonym"),
    Pair("What is the plural of mouse?", "What is the plural of house?", False, "entity"),
    Pair(
        "Explain the causes of the French Revolution",
        "Explain the consequences of the French Revolution",
        False,
        "scope",
    ),
    Pair("How do I increase the volume on my iPhone?", "How do I mute my iPhone?", False, "scope"),
    Pair("Which is bigger, the sun or the moon?", "Which is hotter, the sun or the moon?", False, "scope"),
]


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


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return Embedder()
    except EmbeddingModelMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    return near_miss_corpus


@pytest.fixture(scope="module")
def corpus_similarities(embedder: Embedder, corpus: ModuleType) -> np.ndarray:
    return pair_similarities(embedder, corpus.PAIRS)


def test_threshold_and_verify_reach_the_precision_and_recall_aims(
    corpus: ModuleType, corpus_similarities: np.ndarray, record_property: Callable[[str, object], None]
) -> None:
    scores = score_matcher(corpus.PAIRS, corpus_similarities.tolist(), SemanticMatcher())
    print("\n" + scores.table())
    _record(record_property, "pipeline", scores)
    assert scores.precision >= 0.97, _wrong_hits(scores)
    assert scores.recall >= 0.6


@pytest.mark.parametrize(
    ("held_out", "precision", "recall"),
    [(near_miss_holdout, 0.96, 0.31), (near_miss_holdout3, 0.97, 0.29)],
    ids=["holdout", "holdout3"],
)
def test_held_out_pairs_keep_their_measured_floor(
    embedder: Embedder, held_out: ModuleType, precision: float, recall: float
) -> None:
    """Sets written by other hands after the verifier's first version, and never tuned on: what the cache does on
    prompts nobody adjusted it to. verify changed after they were first scored (operators; the order check), from
    elsewhere and without changing a verdict on them. First scored, and still: 0.962 / 0.319 and 0.978 / 0.294
    (below the aims; see docs/benchmarks.md), where a threshold alone has a precision of 0.45-0.49. Asserted: those
    floors, so a change that makes the cache serve more wrong answers fails here. A set is held out only while no
    change made after its first scoring has touched it: editing it, tuning on its results or reading its misses to
    change the code would end its use."""
    similarities = pair_similarities(embedder, held_out.PAIRS)
    scores = score_matcher(held_out.PAIRS, similarities.tolist(), SemanticMatcher())
    print("\n" + scores.table())
    assert scores.precision >= precision, _wrong_hits(scores)
    assert scores.recall >= recall
    assert scores.precision > score_threshold(held_out.PAIRS, similarities.tolist(), 0.80).precision + 0.4


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
    rewordings = score_matcher(OWN_PAIRS, similarities, SemanticMatcher(rewording_threshold=0.90))
    print("\n" + default.table() + "\n" + rewordings.table().splitlines()[0])
    assert default.precision >= 0.97, _wrong_hits(default)
    assert rewordings.false_hits > default.false_hits, "one-word swaps at a high cosine: why rewordings stay off"


def _wrong_hits(scores: Scores) -> str:
    return "wrong hits:\n" + "\n".join(f"  {k}: {c!r} -> {a!r}" for k, c, a in scores.false_hit_examples)


def _record(record_property: Callable[[str, object], None], name: str, scores: Scores) -> None:
    record_property(f"{name}_precision", round(scores.precision, 4))
    record_property(f"{name}_recall", round(scores.recall, 4))
    for kind, score in scores.kinds.items():
        record_property(f"{name}_{kind}_served", f"{score.served}/{score.pairs}")
