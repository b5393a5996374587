"""Train the prompt-injection detector's linear model and write its file (reproducible: fixed seeds, pinned data).

    .venv/bin/pip install -e '.[train]'   # scikit-learn and pyarrow, for training only
    .venv/bin/python scripts/injection_model/train.py

Steps, every choice made on validation splits only (the test splits and the other-hand set are never read here):
1. load the corpora (corpora.py), normalise each text as the scorer does (`injection.model_input`);
2. add indirect-injection documents: benign texts joined into a page, half of them with one attack sentence put
   in at a random place, scored as tool output (no public corpus has many such pages);
3. featurize with the Rust core's `hashed_ngrams` (the same code that scores at run time), one row per window,
   each weighted 1/windows so a long text counts once;
4. fit a logistic regression (scikit-learn, liblinear, balanced classes) for each candidate in a small grid of
   hash width, window and regularisation, and keep the one with the best validation recall at precision >= 0.97
   (worst corpus first, then pooled);
5. quantize the weights to int8, load the file in the Rust core and calibrate on validation margins so that the
   score 0.8 falls where validation precision reaches 0.97 (Platt scaling for the slope);
6. write python/gateway/policy/guardrails/models/injection_linear.{bin,json} and the public test splits.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import struct
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import LICENSES, ROOT, Example, load, write_test_splits

from gateway._core import LinearTextModel, hashed_ngrams
from gateway.policy.guardrails.injection import InjectionScorer, model_input

MODEL_DIR = ROOT / "python" / "gateway" / "policy" / "guardrails" / "models"
VERSION = "injection-linear-2"
SEED = 18
TARGET_PRECISION = 0.97
"""Validation precision at the calibrated 0.8: above the 0.95 aim, for the margin a new corpus takes."""
DEFAULT_THRESHOLD = 0.8
GRID = sorted(
    {(bits, window, c) for bits in (18, 20) for window in (32, 64) for c in (2.0, 8.0)}
    | {(18, window, c) for window in (24, 32) for c in (8.0, 32.0)}
)
"""Every candidate tried (docs/guardrails.md has their validation figures); `--config` skips the search."""


@dataclass(frozen=True, slots=True)
class Fitted:
    bits: int
    window: int
    c: float
    weights: np.ndarray
    bias: float


def indirect_documents(examples: list[Example], split: str, count: int, rng: random.Random) -> list[Example]:
    """Pages of benign text, half with one attack sentence hidden among them (tool output)."""
    benign = [e.text for e in examples if e.split == split and not e.attack and len(e.text) < 400]
    attacks = [e.text for e in examples if e.split == split and e.attack and len(e.text.split()) <= 40]
    docs = []
    for i in range(count):
        page = rng.sample(benign, rng.randint(3, 8))
        attack = i % 2 == 0
        if attack:
            page.insert(rng.randint(0, len(page)), rng.choice(attacks))
        docs.append(Example(" ".join(page), attack, "indirect_pages", split, "indirect" if attack else "benign",
                            role="tool"))  # fmt: skip
    return docs


def featurize(texts: list[str], bits: int, window: int) -> tuple[csr_matrix, np.ndarray]:
    """One row per window; `owner[i]` is the text of row i."""
    indptr, indices, values, owner = [0], [], [], []
    for n, text in enumerate(texts):
        for idx, val in hashed_ngrams(text, bits, window, window // 2):
            indices.extend(idx)
            values.extend(val)
            indptr.append(len(indices))
            owner.append(n)
    matrix = csr_matrix((np.array(values, np.float32), np.array(indices, np.int32), np.array(indptr)),
                        shape=(len(owner), 1 << bits))  # fmt: skip
    return matrix, np.array(owner)


def text_margins(row_margins: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """The highest window margin of each text (texts without words get -inf)."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, owner, row_margins)
    return out


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> tuple[float, float]:
    """(threshold, recall) of the lowest threshold whose precision is at least `precision`."""
    order = np.argsort(-scores)
    tp = np.cumsum(labels[order])
    fp = np.cumsum(1 - labels[order])
    ok = np.nonzero(tp / np.maximum(tp + fp, 1) >= precision)[0]
    if len(ok) == 0:
        return math.inf, 0.0
    k = ok[-1]
    return float(scores[order][k]), float(tp[k] / max(labels.sum(), 1))


def recall_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    return float(((scores >= threshold) & (labels == 1)).sum() / max(labels.sum(), 1))


def fit(train: list[Example], bits: int, window: int, c: float) -> Fitted:
    x, owner = featurize([e.text for e in train], bits, window)
    y = np.array([int(train[i].attack) for i in owner])
    windows = np.bincount(owner, minlength=len(train))
    weight = 1.0 / windows[owner]
    model = LogisticRegression(C=c, solver="liblinear", class_weight="balanced", random_state=SEED, max_iter=200)
    model.fit(x, y, sample_weight=weight)
    return Fitted(bits, window, c, model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def validation_report(fitted: Fitted, val: list[Example]) -> tuple[float, float, dict[str, float]]:
    x, owner = featurize([e.text for e in val], fitted.bits, fitted.window)
    return judge(text_margins(x @ fitted.weights + fitted.bias, owner, len(val)), val)


def judge(margins: np.ndarray, val: list[Example]) -> tuple[float, float, dict[str, float]]:
    """(worst corpus recall, pooled recall) at the pooled threshold of TARGET_PRECISION, and recall per corpus: how
    every candidate is compared."""
    labels = np.array([int(e.attack) for e in val])
    threshold, pooled = recall_at_precision(margins, labels, TARGET_PRECISION)
    per_corpus = {}
    for corpus in sorted({e.corpus for e in val}):
        mask = np.array([e.corpus == corpus for e in val])
        if labels[mask].sum():
            per_corpus[corpus] = recall_at(margins[mask], labels[mask], threshold)
    return min(per_corpus.values()), pooled, per_corpus


def model_file(fitted: Fitted, slope: float, offset: float) -> bytes:
    scale = float(np.abs(fitted.weights).max() / 127.0)
    q = np.clip(np.round(fitted.weights / scale), -127, 127).astype(np.int8)
    header = b"GWLTM001" + struct.pack("<3I4f", fitted.bits, fitted.window, fitted.window // 2, scale, fitted.bias,
                                       slope, offset)  # fmt: skip
    return header + q.tobytes()


def calibrate(data: bytes, val: list[Example]) -> tuple[float, float, float]:
    """(slope, offset, raw threshold): score 0.8 at the margin where validation precision reaches the target."""
    model = LinearTextModel(data)
    margins = np.array([max(model.margins(e.text), default=-1e9) for e in val])
    return calibrate_margins(margins, np.array([int(e.attack) for e in val]))


def calibrate_margins(margins: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """(slope, offset, raw threshold) for validation margins: 0.8 where precision reaches the target, the slope
    by Platt scaling around it."""
    threshold, _ = recall_at_precision(margins, labels, TARGET_PRECISION)
    logit = math.log(DEFAULT_THRESHOLD / (1 - DEFAULT_THRESHOLD))
    centred = np.clip(margins - threshold, -50, 50)

    def loss(a: float) -> float:
        p = 1 / (1 + np.exp(-(a * centred + logit)))
        return float(-np.mean(labels * np.log(p + 1e-12) + (1 - labels) * np.log(1 - p + 1e-12)))

    slope = min((a for a in np.linspace(0.2, 8.0, 79)), key=loss)
    return float(slope), float(logit - slope * threshold), threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "injection-corpora")
    parser.add_argument("--config", help="bits,window,C: train this candidate only (the chosen one: 18,32,8)")
    args = parser.parse_args()
    grid = GRID
    if args.config:
        bits, window, c = args.config.split(",")
        grid = [(int(bits), int(window), float(c))]
    rng = random.Random(SEED)
    examples = load(args.cache)
    write_test_splits(examples)
    examples = [replace(e, text=model_input(e.text)) for e in examples if e.split != "test"]
    train = [e for e in examples if e.split == "train"]
    val = [e for e in examples if e.split == "validation"]
    train += indirect_documents(train, "train", 1500, rng)
    val += indirect_documents(val, "validation", 300, rng)
    print(f"train {len(train)} texts, validation {len(val)} texts", flush=True)

    best: tuple[tuple[float, float], Fitted, dict[str, float]] | None = None
    for bits, window, c in grid:
        fitted = fit(train, bits, window, c)
        worst, pooled, per_corpus = validation_report(fitted, val)
        print(f"bits={bits} window={window} C={c}: worst {worst:.3f} pooled {pooled:.3f} {per_corpus}", flush=True)
        if best is None or (worst, pooled) > best[0]:
            best = ((worst, pooled), fitted, per_corpus)
    assert best is not None
    fitted = best[1]
    slope, offset, raw_threshold = calibrate(model_file(fitted, 1.0, 0.0), val)
    data = model_file(fitted, slope, offset)

    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    (MODEL_DIR / "injection_linear.bin").write_bytes(data)
    meta: dict[str, object] = {
        "version": VERSION,
        "sha256": hashlib.sha256(data).hexdigest(),
        "featurizer": {"dim_bits": fitted.bits, "window": fitted.window, "stride": fitted.window // 2},
        "regularisation_c": fitted.c,
        "calibration": {"slope": slope, "offset": offset, "raw_threshold_at_0.8": raw_threshold},
        "trained_on": {corpus: LICENSES[corpus] for corpus in sorted({e.corpus for e in train} & set(LICENSES))},
        "seed": SEED,
    }
    card = MODEL_DIR / "injection_linear.json"
    card.write_text(json.dumps(meta, indent=2) + "\n")
    # The shipped scorer (model and phrasings together) on validation, for the record.
    scorer = InjectionScorer()
    shipped = np.array([scorer.score(e.text).score for e in val])
    labels = np.array([int(e.attack) for e in val])
    flagged = shipped >= DEFAULT_THRESHOLD
    meta["validation"] = {
        "model_recall_at_precision_0.97_per_corpus": best[2],
        "shipped_scorer_at_0.8": {
            "precision": float((flagged & (labels == 1)).sum() / max(flagged.sum(), 1)),
            "recall": recall_at(shipped, labels, DEFAULT_THRESHOLD),
        },
    }
    card.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
