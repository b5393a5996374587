"""Trains the semantic cache's learned verdict (gateway/cache/semantic/pair_model.py) and writes its JSON file.

    .venv/bin/pip install -e '.[train]'   # scikit-learn, for training only
    .venv/bin/python scripts/train_verify_model.py

Data: the first near-miss corpus (tests/cache/near_miss_corpus.py), the probes of one-word swaps written beside it
(tests/cache/near_miss_probes.py), both the project's own (Apache-2.0), and since verify-pair-v2 the 348 pairs of
data/independent/verify_pairs.jsonl (CC0), written by another hand and no longer held out: its figures are regression
floors now. The two corpora written by other hands in tests/ (near_miss_holdout.py, near_miss_holdout3.py) never enter
training, candidate choice or the threshold: tests/cache/test_near_miss.py scores them. No public paraphrase set ships
inside a PyPI package that could be found, so none is used.

Rows: the pairs a cache would ask the model about, those whose cosine reaches the candidate's floor (the matcher's
default threshold) and that no hard rule of verify vetoed. A candidate is a floor and a model (logistic regressions
and gradient-boosted trees). Each is cross-validated (5 folds, fixed seeds) on those rows: its threshold is the lowest
at which the served pairs reach PRECISION, and it serves some share of all the training set's same pairs (those
below its floor count as missed, so floors compare). Each tree candidate is also trained without the v1 pairs, at its
own cross-validated threshold, and scored on them: how it does on a hand it never read, which is what the issue
measures. The winner serves the most v1 pairs so, among those at a precision of at least UNSEEN_PRECISION there (ties:
the cross-validated count); it is then trained on all rows. A lower floor lets the model see rewordings that share
few words, which MiniLM scores 0.6-0.8. Gradient-boosted trees are exported leaf by leaf; a candidate of another kind
would need its own scorer, so only trees are exported (the logistic regressions are measured for the record).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sklearn  # type: ignore[import-untyped]
from sklearn.base import ClassifierMixin  # type: ignore[import-untyped]
from sklearn.ensemble import GradientBoostingClassifier  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.model_selection import StratifiedKFold, cross_val_predict  # type: ignore[import-untyped]
from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "python")]

from gateway.cache.semantic.embedder import Embedder  # noqa: E402
from gateway.cache.semantic.evaluation import LabelledPair, pair_similarities  # noqa: E402
from gateway.cache.semantic.pair_features import FEATURES, pair_features  # noqa: E402
from gateway.cache.semantic.pair_model import MODEL_FILE, load_pair_model  # noqa: E402
from gateway.cache.semantic.verify import VETOES, compare  # noqa: E402
from tests.cache import near_miss_corpus  # noqa: E402
from tests.cache.near_miss_probes import OWN_PAIRS  # noqa: E402
from tests.data.independent_pairs import verify_pairs  # noqa: E402

SEED = 0
PRECISION = 0.985
"""Cross-validated precision the chosen threshold must reach: above the 0.97 aim, for the distance to unseen text."""
UNSEEN_PRECISION = 0.95
"""Precision a candidate must keep on the v1 pairs when trained without them; all fall short of 0.97 there."""
VERSION = "verify-pair-v2"
FLOORS = (0.60, 0.65, 0.70, 0.80)
"""Candidate floors: cosines below which a pair is never served (0.80: verify-pair-v1's)."""


@dataclass(frozen=True, slots=True)
class Rows:
    """The model's rows at one floor: features, labels, and which rows are the v1 pairs of another hand."""

    x: np.ndarray
    y: np.ndarray
    independent: np.ndarray


def rows(pairs: Sequence[LabelledPair], similarities: Sequence[float], independent: int, floor: float) -> Rows:
    """The pairs at or above `floor` that no veto refused; the last `independent` pairs are data/independent's."""
    features, labels, marks = [], [], []
    first_independent = len(pairs) - independent
    for i, (pair, similarity) in enumerate(zip(pairs, similarities, strict=True)):
        verdict = compare(pair.cached, pair.asked)
        if similarity >= floor and verdict.kind not in VETOES:
            features.append(pair_features(pair.cached, pair.asked, similarity, verdict))
            labels.append(pair.same)
            marks.append(i >= first_independent)
    return Rows(np.array(features), np.array(labels), np.array(marks))


def candidates() -> dict[str, ClassifierMixin]:
    def boosted(trees: int, depth: int, rate: float) -> GradientBoostingClassifier:
        return GradientBoostingClassifier(
            n_estimators=trees, max_depth=depth, learning_rate=rate, subsample=0.8, random_state=SEED
        )

    return {
        "logistic C=1": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
        "logistic C=0.1": make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)),
        "trees 100 x depth 2": boosted(100, 2, 0.1),
        "trees 150 x depth 3": boosted(150, 3, 0.05),
        "trees 300 x depth 3": boosted(300, 3, 0.05),
    }


def threshold_for(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """The lowest threshold (in steps of 0.01) whose served pairs reach PRECISION, and how many right hits it keeps."""
    for threshold in np.arange(0.30, 1.0, 0.01):
        served = probabilities >= threshold
        if served.any() and labels[served].mean() >= PRECISION:
            return round(float(threshold), 2), int(labels[served].sum())
    return 1.0, 0


def export(
    model: GradientBoostingClassifier, threshold: float, floor: float, notes: dict[str, object]
) -> dict[str, object]:
    trees = []
    for (estimator,) in model.estimators_:
        t = estimator.tree_
        trees.append({
            "feature": t.feature.tolist(),
            "threshold": t.threshold.tolist(),
            "left": t.children_left.tolist(),
            "right": t.children_right.tolist(),
            "value": (t.value[:, 0, 0] * model.learning_rate).tolist(),
        })  # fmt: skip
    prior = float(np.mean(model.init_.class_prior_[1]))
    return {
        "version": VERSION,
        "features": list(FEATURES),
        "base": float(np.log(prior / (1 - prior))),
        "threshold": threshold,
        "floor": floor,
        "trees": trees,
        **notes,
    }


def cross_validated(model: ClassifierMixin, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    return threshold_for(cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1], y)


def unseen_hand(name: str, data: Rows, positives: int) -> dict[str, float]:
    """Trained without the v1 pairs, at its own cross-validated threshold, scored on them: precision and recall."""
    seen = ~data.independent
    threshold, _ = cross_validated(candidates()[name], data.x[seen], data.y[seen])
    model = candidates()[name].fit(data.x[seen], data.y[seen])
    served = model.predict_proba(data.x[data.independent])[:, 1] >= threshold
    labels = data.y[data.independent]
    precision = float(labels[served].mean()) if served.any() else 1.0
    return {"precision": round(precision, 3), "recall": round(int(labels[served].sum()) / positives, 3)}


def main() -> None:
    independent = verify_pairs()
    pairs: list[LabelledPair] = [*near_miss_corpus.PAIRS, *OWN_PAIRS, *independent]
    similarities = pair_similarities(Embedder(), pairs).tolist()
    positives = sum(p.same for p in pairs)
    independent_positives = sum(p.same for p in independent)
    print(f"{len(pairs)} pairs ({positives} same): near_miss_corpus.py, near_miss_probes.py, data/independent")
    measured: dict[tuple[float, str], tuple[float, int]] = {}
    unseen_figures: dict[tuple[float, str], dict[str, float]] = {}
    record: dict[str, dict[str, object]] = {}
    at_floor = {floor: rows(pairs, similarities, len(independent), floor) for floor in FLOORS}
    for floor, data in at_floor.items():
        for name, model in candidates().items():
            threshold, served = measured[floor, name] = cross_validated(model, data.x, data.y)
            entry: dict[str, object] = {"threshold": threshold, "same_served": served, "recall": served / positives}
            if name.startswith("trees"):
                entry["unseen_hand_v1"] = unseen_figures[floor, name] = unseen_hand(name, data, independent_positives)
            record[f"{floor:.2f} {name}"] = entry
            print(f"  floor {floor:.2f}, {name}: {entry}")
    unseen = {key: unseen_figures[key] for key in measured if key in unseen_figures}
    eligible = [key for key, figures in unseen.items() if figures["precision"] >= UNSEEN_PRECISION] or list(unseen)
    floor, chosen = max(eligible, key=lambda key: (unseen[key]["recall"], measured[key][1]))
    data = at_floor[floor]
    model = candidates()[chosen]
    assert isinstance(model, GradientBoostingClassifier)
    model.fit(data.x, data.y)
    notes = {
        "trained_on": "tests/cache/near_miss_corpus.py, tests/cache/near_miss_probes.py (the project's own, "
        "Apache-2.0), data/independent/verify_pairs.jsonl (another hand's, CC0; no longer held out)",
        "held_out": ["tests/cache/near_miss_holdout.py", "tests/cache/near_miss_holdout3.py"],
        "rows": len(data.y),
        "candidate": f"floor {floor:.2f}, {chosen}",
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
    print(f"chose floor {floor:.2f}, {chosen}; wrote {MODEL_FILE.relative_to(ROOT)} ({size} KB)")


if __name__ == "__main__":
    main()
