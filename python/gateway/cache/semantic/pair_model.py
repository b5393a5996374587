"""The learned verdict: gradient-boosted trees over a pair's FEATURES (pair_features.py), scored in plain Python.

verify's hard rules run first and veto what must never be served (another number, unit, operator or version, a
negation or opposite, another name, language or direction, two things trading places). A pair they let through,
same or differing only in content words, is scored here: the sum of the trees' leaves is a log-odds that the two
prompts ask for the same thing, and the pair is served when it reaches the model's threshold.

The model is a JSON file in models/, written by scripts/train_verify_model.py (scikit-learn at training time only;
fixed seeds) and versioned by its name and its `version` field: what trained it, on which data, and how it scored
there is in the file and in docs/benchmarks.md. verify-pair-v4 is the mean of 5 seeds of 100 trees of depth 2,
summed as 500 trees: about 0.3 ms a pair.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

from gateway.cache.semantic.pair_features import FEATURES

MODEL_FILE: Final = Path(__file__).with_name("models") / "verify-pair-v4.json"


@dataclass(frozen=True, slots=True)
class Tree:
    """One regression tree as flat arrays; node i is a leaf when left[i] is -1, and its value is already scaled by
    the learning rate and by the number of seeds averaged."""

    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    value: tuple[float, ...]

    def leaf(self, row: list[float]) -> float:
        node = 0
        while self.left[node] != -1:
            node = self.left[node] if row[self.feature[node]] <= self.threshold[node] else self.right[node]
        return self.value[node]


@dataclass(frozen=True, slots=True)
class PairModel:
    version: str
    base: float
    """The log-odds every pair starts from (the training set's prior)."""
    trees: tuple[Tree, ...]
    threshold: float
    """Probability at or above which a pair is served."""
    floor: float
    """The lowest cosine among the pairs it was trained on: below it the model has never judged, so the matcher's
    default threshold (and `cache.similarity_threshold`'s) is this value."""

    def probability(self, row: list[float]) -> float:
        """That the pair whose FEATURES are `row` asks for the same thing."""
        log_odds = self.base + sum(tree.leaf(row) for tree in self.trees)
        return 1.0 / (1.0 + math.exp(-log_odds))


def load_pair_model(path: Path = MODEL_FILE) -> PairModel:
    """Reads a model file; ValueError if it was trained on other features than this code computes."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    if tuple(raw["features"]) != FEATURES:
        raise ValueError(
            f"{path.name} was trained on features {raw['features']}, this code computes {list(FEATURES)}: "
            "retrain it with scripts/train_verify_model.py"
        )
    trees = tuple(
        Tree(tuple(t["feature"]), tuple(t["threshold"]), tuple(t["left"]), tuple(t["right"]), tuple(t["value"]))
        for t in raw["trees"]
    )
    return PairModel(str(raw["version"]), float(raw["base"]), trees, float(raw["threshold"]), float(raw["floor"]))


@cache
def shipped_pair_model() -> PairModel:
    """The model in the package, read once."""
    return load_pair_model()
