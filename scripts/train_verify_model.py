"""Trains the semantic cache's learned verdict (gateway/cache/semantic/pair_model.py) and writes its JSON file.

    .venv/bin/pip install -e '.[train]'   # scikit-learn, for training only
    .venv/bin/python scripts/train_verify_model.py

Data: the first near-miss corpus (tests/cache/near_miss_corpus.py) and the probes of one-word swaps written beside it
(tests/cache/near_miss_probes.py), the project's own, Apache-2.0. The two sets
written by other hands (near_miss_holdout.py, near_miss_holdout3.py) never enter training, candidate choice or the
threshold: tests/cache/test_near_miss.py scores them. No public paraphrase set ships inside a PyPI package that could
be found, so none is used.

Rows: the pairs a cache would ask the model about, those whose cosine reaches the matcher's threshold (0.80) and that
no hard rule of verify vetoed. Candidates (logistic regressions and small gradient-boosted trees) are compared by
5-fold cross-validation on those rows, fixed seeds; the one with the highest cross-validated recall at a precision of
at least PRECISION wins, at the lowest threshold that reaches it. Gradient-boosted trees are exported leaf by leaf; a
candidate of another kind would need its own scorer, so only trees are exported (the logistic regressions are
measured for the record).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
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
from gateway.cache.semantic.matcher import DEFAULT_THRESHOLD  # noqa: E402
from gateway.cache.semantic.pair_features import FEATURES, pair_features  # noqa: E402
from gateway.cache.semantic.pair_model import MODEL_FILE, load_pair_model  # noqa: E402
from gateway.cache.semantic.verify import VETOES, compare  # noqa: E402
from tests.cache import near_miss_corpus  # noqa: E402
from tests.cache.near_miss_probes import OWN_PAIRS  # noqa: E402

SEED = 0
PRECISION = 0.985
"""Cross-validated precision the chosen threshold must reach: above the 0.97 aim, for the distance to unseen text."""
VERSION = "verify-pair-v1"


def rows(pairs: Sequence[LabelledPair], similarities: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for pair, similarity in zip(pairs, similarities, strict=True):
        verdict = compare(pair.cached, pair.asked)
        if similarity >= DEFAULT_THRESHOLD and verdict.kind not in VETOES:
            features.append(pair_features(pair.cached, pair.asked, similarity, verdict))
            labels.append(pair.same)
    return np.array(features), np.array(labels)


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
    }


def threshold_for(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """The lowest threshold (in steps of 0.01) whose served pairs reach PRECISION, and how many right hits it keeps."""
    for threshold in np.arange(0.30, 1.0, 0.01):
        served = probabilities >= threshold
        if served.any() and labels[served].mean() >= PRECISION:
            return round(float(threshold), 2), int(labels[served].sum())
    return 1.0, 0


def export(model: GradientBoostingClassifier, threshold: float, notes: dict[str, object]) -> dict[str, object]:
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
        "trees": trees,
        **notes,
    }


def main() -> None:
    pairs: list[LabelledPair] = [*near_miss_corpus.PAIRS, *OWN_PAIRS]
    x, y = rows(pairs, pair_similarities(Embedder(), pairs).tolist())
    print(f"{len(y)} rows ({int(y.sum())} same) from {len(pairs)} pairs of near_miss_corpus.py and near_miss_probes.py")
    folds = StratifiedKFold(5, shuffle=True, random_state=SEED)
    measured: dict[str, tuple[float, int]] = {}
    for name, model in candidates().items():
        probabilities = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
        measured[name] = threshold_for(probabilities, y)
        print(f"  {name}: threshold {measured[name][0]:.2f}, {measured[name][1]} of {int(y.sum())} same served")
    trees = {name: m for name, m in measured.items() if name.startswith("trees")}
    chosen = max(trees, key=lambda name: trees[name][1])
    model = candidates()[chosen]
    assert isinstance(model, GradientBoostingClassifier)
    model.fit(x, y)
    notes = {
        "trained_on": "tests/cache/near_miss_corpus.py, tests/cache/near_miss_probes.py (the project's own, "
        "Apache-2.0)",
        "held_out": ["tests/cache/near_miss_holdout.py", "tests/cache/near_miss_holdout3.py"],
        "rows": len(y),
        "candidate": chosen,
        "cross_validated": {name: {"threshold": t, "same_served": n} for name, (t, n) in measured.items()},
        "seed": SEED,
        "scikit_learn": sklearn.__version__,
    }
    MODEL_FILE.parent.mkdir(exist_ok=True)
    MODEL_FILE.write_text(json.dumps(export(model, measured[chosen][0], notes)) + "\n", encoding="utf-8")
    shipped = load_pair_model()
    ours = np.array([shipped.probability(row) for row in x.tolist()])
    gap = float(np.max(np.abs(ours - model.predict_proba(x)[:, 1])))
    assert gap < 1e-9, f"the exported trees disagree with scikit-learn by {gap}"
    print(f"chose {chosen}; wrote {MODEL_FILE.relative_to(ROOT)} ({MODEL_FILE.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
