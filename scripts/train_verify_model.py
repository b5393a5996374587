"""Trains the semantic cache's learned verdict (gateway/cache/semantic/pair_model.py) and writes its JSON file.

    .venv/bin/pip install -e '.[train]'   # scikit-learn, for training only
    .venv/bin/python scripts/train_verify_model.py

Data: the first near-miss corpus (tests/cache/near_miss_corpus.py), the probes of one-word swaps written beside it
(tests/cache/near_miss_probes.py), both the project's own (Apache-2.0), the 348 pairs of
data/independent/verify_pairs.jsonl (since verify-pair-v2), the 428 of data/independent-2/verify_pairs.jsonl (since
verify-pair-v3) and the 520 of data/independent-3/verify_pairs.jsonl (since verify-pair-v4), all CC0 and written by
other hands, each scored once while held out and no longer held out: their figures are regression floors now, quoted
out of fold. The two corpora written by other hands in tests/ (near_miss_holdout.py, near_miss_holdout3.py) never
enter training or the threshold; since v3 they validated the floor, the precision target and the model size (FLOORS,
PRECISION, candidates: their wrong answers' kinds were read, none of their pairs). The fourth set, written while v4 was
trained, enters nothing and was never opened here: the lead scores the shipped model on it once
(scripts/score_verify_pairs.py). No public paraphrase set ships inside a PyPI package that could be found, so none is
used.

Rows: the pairs a cache would ask the model about, those whose cosine reaches the candidate's floor (the matcher's
default threshold) and that no hard rule of verify vetoed. A candidate is a floor and a model: gradient-boosted trees,
each the mean of BAGS seeds (BaggedBoosting). Each is cross-validated (5 folds, REPEATS splits averaged, fixed seeds)
on those rows: its threshold is the lowest at which the served pairs reach PRECISION, and it serves some share of all
the training set's same pairs (those below its floor count as missed, so floors compare). Each is also trained
without one other hand's pairs (v1, v2, then v3), at its own cross-validated threshold, and scored on them: how it does
on a hand it never read, which is what the issue measures. These figures swing with a few pairs (the thresholds sit
where few near misses are left), so the winner is the one whose worst recall of the three is best among those that
keep precision >= AIM on both unseen hands (if none does, among all; since v3 one candidate is left, and these
figures are its report); it is then trained on all rows. The
out-of-fold figures on each hand's pairs at the chosen threshold are printed and kept in the model file. A lower floor
lets the model see rewordings that share few words, which MiniLM scores 0.6-0.8. verify-pair-v1's logistic
regressions kept fewer rewordings at the same precision than trees and had no exporter; they are not tried again.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn  # type: ignore[import-untyped]
from sklearn.base import BaseEstimator, ClassifierMixin  # type: ignore[import-untyped]
from sklearn.ensemble import GradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedKFold, cross_val_predict  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "python")]

from gateway.cache.semantic.embedder import Embedder  # noqa: E402
from gateway.cache.semantic.evaluation import LabelledPair, pair_similarities  # noqa: E402
from gateway.cache.semantic.pair_features import FEATURES, pair_features  # noqa: E402
from gateway.cache.semantic.pair_model import MODEL_FILE, load_pair_model  # noqa: E402
from gateway.cache.semantic.verify import VETOES, compare  # noqa: E402
from tests.cache import near_miss_corpus  # noqa: E402
from tests.cache.near_miss_probes import OWN_PAIRS  # noqa: E402
from tests.data.independent_pairs import DATA, verify_pairs  # noqa: E402

SEED = 0
PRECISION = 0.9925
"""Cross-validated precision the chosen threshold must reach: above the 0.97 aim, for the distance to unseen text
(0.985 until v3, where it served a negation and unrelated questions on corpora 2 and 3; 0.99 in v3, which for v4 gave
threshold 0.94 and a negation served on corpus 3; 0.995 gave 0.97 and a tenth of the recall lost: docs/benchmarks.md,
"the learned verdict, v4")."""
AIM = 0.97
"""The issue's precision aim on a hand the model never read."""
VERSION = "verify-pair-v4"
BAGS = 5
"""Seeds per model (BaggedBoosting)."""
REPEATS = 2
"""Cross-validation splits averaged per row."""
FLOORS = (0.65,)
"""Candidate floors: cosines below which a pair is never served. verify-pair-v3 was chosen among 0.60, 0.65 and 0.70
(docs/benchmarks.md, "the learned verdict, v3"): 0.70 lost a fifth of the recall, and 0.60, which this rule picked,
served unrelated questions at cosine 0.60-0.65 on corpora 2 and 3 (5 and 2 wrong answers, precision 0.949 on corpus
3), which were then used to validate the floor (their kinds read, no pair): 0.65 it stays. 0.80, verify-pair-v1's,
has not won since v2. For v4 the rule picked 0.60 again (unseen-hand recall on data/independent-3 0.398 against
0.372, before the acronym and German-noun changes) and it served 2 and 3 unrelated questions on corpora 2 and 3
(precision 0.981 and 0.970, against 0.991 and 0.980 at 0.65): 0.65 it stays."""
HANDS = {1: "data/independent", 2: "data/independent-2", 3: "data/independent-3"}
"""Which rows are which other hand's pairs (0: the project's own)."""


@dataclass(frozen=True, slots=True)
class Rows:
    """The model's rows at one floor: features, labels, and whose hand wrote each (HANDS; 0 the project's)."""

    x: np.ndarray
    y: np.ndarray
    hand: np.ndarray


def rows(pairs: Sequence[LabelledPair], similarities: Sequence[float], hands: Sequence[int], floor: float) -> Rows:
    """The pairs at or above `floor` that no veto refused."""
    features, labels, marks = [], [], []
    for pair, similarity, hand in zip(pairs, similarities, hands, strict=True):
        verdict = compare(pair.cached, pair.asked)
        if similarity >= floor and verdict.kind not in VETOES:
            features.append(pair_features(pair.cached, pair.asked, similarity, verdict))
            labels.append(pair.same)
            marks.append(hand)
    return Rows(np.array(features), np.array(labels), np.array(marks))


class BaggedBoosting(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no stubs
    """The mean log-odds of BAGS gradient-boosted models that differ only in their seed (each fits on random 80%
    subsamples): one such model's probabilities near the threshold move with its seed, and the threshold sits where
    few near misses are left, so which pairs it serves did too. Exported as one sum of all their trees."""

    def __init__(self, trees: int = 150, depth: int = 3, rate: float = 0.05) -> None:
        self.trees = trees
        self.depth = depth
        self.rate = rate

    def fit(self, x: np.ndarray, y: np.ndarray) -> BaggedBoosting:
        self.classes_ = np.array([False, True])
        self.models_ = [
            GradientBoostingClassifier(
                n_estimators=self.trees, max_depth=self.depth, learning_rate=self.rate, subsample=0.8, random_state=seed
            ).fit(x, y)
            for seed in range(SEED, SEED + BAGS)
        ]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x)[:, 1] >= 0.5

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        log_odds = np.mean([model.decision_function(x) for model in self.models_], axis=0)
        same = 1.0 / (1.0 + np.exp(-log_odds))
        return np.column_stack([1.0 - same, same])


def candidates() -> dict[str, BaggedBoosting]:
    """Since v3 one: 150 trees of depth 3, which cross-validation preferred, served a negation near miss on corpus 3
    at both precision targets and 100 trees of depth 2 none (docs/benchmarks.md, "the learned verdict, v3"). For v4
    150 trees of depth 2 won the rule by one pair (unseen-hand recall 0.300 against 0.287 on data/independent) and
    served the same negation near miss on corpus 3; it costs half as much again per pair."""
    return {"trees 100 x depth 2": BaggedBoosting(100, 2, 0.1)}


def threshold_for(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """The lowest threshold (in steps of 0.01) whose served pairs reach PRECISION, and how many right hits it keeps."""
    for threshold in np.arange(0.30, 1.0, 0.01):
        served = probabilities >= threshold
        if served.any() and labels[served].mean() >= PRECISION:
            return round(float(threshold), 2), int(labels[served].sum())
    return 1.0, 0


def export(model: BaggedBoosting, threshold: float, floor: float, notes: dict[str, object]) -> dict[str, object]:
    trees = []
    for boosted in model.models_:
        for (estimator,) in boosted.estimators_:
            t = estimator.tree_
            trees.append({
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "left": t.children_left.tolist(),
                "right": t.children_right.tolist(),
                "value": (t.value[:, 0, 0] * boosted.learning_rate / BAGS).tolist(),
            })  # fmt: skip
    prior = float(np.mean(model.models_[0].init_.class_prior_[1]))  # the same in every bag: the labels' share
    return {
        "version": VERSION,
        "features": list(FEATURES),
        "base": float(np.log(prior / (1 - prior))),
        "threshold": threshold,
        "floor": floor,
        "trees": trees,
        **notes,
    }


def cross_validated(model: BaggedBoosting, x: np.ndarray, y: np.ndarray) -> tuple[float, int, np.ndarray]:
    """Threshold, same pairs served, and each row's out-of-fold probability averaged over REPEATS 5-fold splits."""
    probabilities = np.mean(
        [
            cross_val_predict(
                model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed), method="predict_proba"
            )
            for seed in range(SEED, SEED + REPEATS)
        ],
        axis=0,
    )[:, 1]
    return (*threshold_for(probabilities, y), probabilities)


def figures(served: np.ndarray, labels: np.ndarray, positives: int) -> dict[str, float]:
    """Precision of the served rows, and recall over all `positives` of the set (vetoed or below the floor too)."""
    precision = float(labels[served].mean()) if served.any() else 1.0
    return {"precision": round(precision, 3), "recall": round(int(labels[served].sum()) / positives, 3)}


def unseen_hand(name: str, data: Rows, hand: int, positives: int) -> dict[str, float]:
    """Trained without `hand`'s pairs, at its own cross-validated threshold, scored on them."""
    seen, unseen = data.hand != hand, data.hand == hand
    threshold, _, _ = cross_validated(candidates()[name], data.x[seen], data.y[seen])
    model = candidates()[name].fit(data.x[seen], data.y[seen])
    return figures(model.predict_proba(data.x[unseen])[:, 1] >= threshold, data.y[unseen], positives)


def main() -> None:
    sources: list[tuple[int, Sequence[LabelledPair]]] = [
        (0, near_miss_corpus.PAIRS),
        (0, OWN_PAIRS),
        (1, verify_pairs(DATA)),
        (2, verify_pairs(DATA.with_name("independent-2"))),
        (3, verify_pairs(DATA.with_name("independent-3"))),
    ]
    pairs: list[LabelledPair] = [pair for _, source in sources for pair in source]
    hands = [hand for hand, source in sources for _ in source]
    # Each source embedded alone, as the tests score it: int8 products move a cosine by up to 0.04 with the texts
    # batched beside it, and a model trained on other batches' cosines scores those sets differently.
    embedder = Embedder()
    similarities = [s for _, source in sources for s in pair_similarities(embedder, source).tolist()]
    positives = sum(p.same for p in pairs)
    hand_positives = {h: sum(p.same for p, ph in zip(pairs, hands, strict=True) if ph == h) for h in HANDS}
    print(
        f"{len(pairs)} pairs ({positives} same): near_miss_corpus.py, near_miss_probes.py, {', '.join(HANDS.values())}"
    )
    measured: dict[tuple[float, str], tuple[float, int]] = {}
    unseen_figures: dict[tuple[float, str], dict[int, dict[str, float]]] = {}
    out_of_fold: dict[tuple[float, str], dict[str, dict[str, float]]] = {}
    record: dict[str, dict[str, object]] = {}
    at_floor = {floor: rows(pairs, similarities, hands, floor) for floor in FLOORS}
    for floor, data in at_floor.items():
        for name, model in candidates().items():
            threshold, served, probabilities = cross_validated(model, data.x, data.y)
            measured[floor, name] = threshold, served
            out_of_fold[floor, name] = {
                path: figures(
                    (probabilities >= threshold) & (data.hand == h), data.y & (data.hand == h), hand_positives[h]
                )
                for h, path in HANDS.items()
            }
            unseen_figures[floor, name] = {h: unseen_hand(name, data, h, hand_positives[h]) for h in HANDS}
            entry: dict[str, object] = {
                "threshold": threshold,
                "same_served": served,
                "recall": round(served / positives, 3),
                "out_of_fold": out_of_fold[floor, name],
                "unseen_hand": {HANDS[h]: f for h, f in unseen_figures[floor, name].items()},
            }
            record[f"{floor:.2f} {name}"] = entry
            print(f"  floor {floor:.2f}, {name}: {entry}")

    def worst_recall(key: tuple[float, str]) -> tuple[bool, float]:
        unseen = unseen_figures[key].values()
        precise = all(f["precision"] >= AIM for f in unseen)
        return precise, min([f["recall"] for f in unseen] + [measured[key][1] / positives])

    floor, chosen = max(unseen_figures, key=worst_recall)
    data = at_floor[floor]
    model = candidates()[chosen].fit(data.x, data.y)
    notes = {
        "trained_on": "tests/cache/near_miss_corpus.py, tests/cache/near_miss_probes.py (the project's own, "
        "Apache-2.0), data/independent/verify_pairs.jsonl, data/independent-2/verify_pairs.jsonl and "
        "data/independent-3/verify_pairs.jsonl (other hands', CC0; no longer held out)",
        "validated_floor_on": ["tests/cache/near_miss_holdout.py", "tests/cache/near_miss_holdout3.py"],
        "held_out": ["data/independent-4"],
        "rows": len(data.y),
        "candidate": f"floor {floor:.2f}, {chosen}",
        "out_of_fold": out_of_fold[floor, chosen],
        "cross_validated": record,
        "seed": SEED,
        "scikit_learn": sklearn.__version__,
    }
    MODEL_FILE.parent.mkdir(exist_ok=True)
    MODEL_FILE.write_text(json.dumps(export(model, measured[floor, chosen][0], floor, notes)) + "\n", encoding="utf-8")
    shipped = load_pair_model()
    ours = np.array([shipped.probability(row) for row in data.x.tolist()])
    gap = float(np.max(np.abs(ours - model.predict_proba(data.x)[:, 1])))
    assert gap < 1e-9, f"the exported trees disagree with scikit-learn by {gap}"
    size = MODEL_FILE.stat().st_size // 1024
    print(f"chose floor {floor:.2f}, {chosen}; out of fold {out_of_fold[floor, chosen]}")
    print(f"wrote {MODEL_FILE.relative_to(ROOT)} ({size} KB)")


if __name__ == "__main__":
    main()
