"""Candidate (b), measured beside the shipped linear model on the same validation splits: a small head over the
all-MiniLM-L6-v2 sentence embedding the semantic cache computes (gateway.cache.semantic.Embedder, int8 ONNX), and
the combination of both opinions.

    .venv/bin/pip install -e '.[train]'
    nice .venv/bin/python scripts/injection_model/candidate_minilm.py [--train-limit 12000] [--test] [--write] [--bench]

MiniLM reads 256 tokens: a longer text is cut into pieces of 254 word-piece tokens that overlap by 32 (cut at the
tokenizer's own offsets, so non-English text is cut as finely as English), and scored by its worst piece, as the
linear model scores its worst window. Embeddings are cached by the piece's SHA-256 in --embeddings (a .npz), so a
re-run embeds only what is new.

What it prints, every figure on the validation splits train.py builds (same seed, same generated indirect pages):
recall of all validation attacks at the thresholds where 2%, 3% and 4% of the hard negatives (benign texts of
neuralchemy, bastioncorpus and the project's own corpora) are flagged, for the shipped linear model's margin, the
head's, their maximum (each Platt-scaled) and a stacked logistic regression over both margins. The two combinations
are fitted on validation margins, so their validation figures come from 5-fold cross-fitting (each fold scored by a
fit on the other four). With --test, the same for each public test split, scored once, with the combinations fitted
on all of validation and the thresholds fixed on validation. With --write, the chosen MLP head and the stacker
fitted on all of validation, calibrated as train.py calibrates the linear model, become the opt-in `combined` model
(python/gateway/policy/guardrails/models/injection_minilm.{npz,json}). docs/guardrails.md records what it printed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from corpora import LICENSES, ROOT, load
from train import SEED, TARGET_PRECISION, calibrate_margins, indirect_documents

from gateway._core import LinearTextModel
from gateway.cache.semantic.embedder import Embedder
from gateway.policy.guardrails.injection import MARGIN_CLIP, model_input
from gateway.policy.guardrails.injection_minilm import (
    MODEL_FILE as HEAD_FILE,
)
from gateway.policy.guardrails.injection_minilm import (
    OVERLAP_TOKENS,
    PIECE_TOKENS,
    head_logits,
)
from tests.policy.guardrails.heldout import held_out_sets

MODEL_FILE = ROOT / "python" / "gateway" / "policy" / "guardrails" / "models" / "injection_linear.bin"
LINEAR_VERSION = json.loads(MODEL_FILE.with_suffix(".json").read_text())["version"]
"""The shipped linear model the head is stacked with (train.py writes it first)."""
HARD_NEGATIVE_CORPORA = {
    "neuralchemy",
    "bastioncorpus",
    "project_written",
    "project_templates",
    "project_cache_prompts",
}
FALSE_ALARM_RATES = (0.02, 0.03, 0.04)
BATCH = 32
VERSION = "injection-minilm-4"


class PieceEmbedder:
    """Embeds the pieces of texts, sorted by length so a batch pads little, through an on-disk cache."""

    def __init__(self, cache: Path) -> None:
        self.embedder = Embedder(intra_op_threads=1, correct_spelling=False)
        self._cache_path = cache
        self._cache: dict[str, np.ndarray] = {}
        if cache.exists():
            stored = np.load(cache)
            self._cache = dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))

    def pieces(self, text: str) -> list[str]:
        return self.embedder.pieces(text, PIECE_TOKENS, OVERLAP_TOKENS)

    def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """(piece vectors, owner text of each piece, seconds spent embedding the pieces not in the cache)."""
        pieces, owner = [], []
        for n, text in enumerate(texts):
            for piece in self.pieces(text):
                pieces.append(piece)
                owner.append(n)
        keys = [hashlib.sha256(p.encode()).hexdigest() for p in pieces]
        todo = sorted({k: p for k, p in zip(keys, pieces, strict=True) if k not in self._cache}.items(),
                      key=lambda kp: len(kp[1]))  # fmt: skip
        started = time.perf_counter()
        for i in range(0, len(todo), BATCH):
            batch = todo[i : i + BATCH]
            for (key, _), vector in zip(batch, self.embedder.embed([p for _, p in batch]), strict=True):
                self._cache[key] = vector
            if (i // BATCH) % 50 == 49:
                self.save()
                print(f"  embedded {i + len(batch)} of {len(todo)} pieces", flush=True)
        spent = time.perf_counter() - started
        self.save()
        return np.vstack([self._cache[k] for k in keys]), np.array(owner), spent

    def save(self) -> None:
        keys = list(self._cache)
        np.savez(self._cache_path, keys=np.array(keys), vectors=np.vstack([self._cache[k] for k in keys]))


def worst(row_margins: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, owner, row_margins)
    return out


def recall_at_false_alarms(
    scores: np.ndarray, attack: np.ndarray, hard: np.ndarray, rate: float
) -> tuple[float, float]:
    """(threshold, recall of every attack) at the lowest threshold flagging at most `rate` of the hard negatives."""
    negatives = np.sort(scores[hard])[::-1]
    allowed = int(np.floor(rate * len(negatives)))
    threshold = np.nextafter(negatives[allowed], np.inf) if allowed < len(negatives) else -np.inf
    return float(threshold), float((scores[attack] >= threshold).mean())


def platt(margins: np.ndarray, labels: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=1e4, max_iter=1000).fit(margins.reshape(-1, 1), labels)


def combine_max(fit_m: np.ndarray, fit_y: np.ndarray, apply_m: np.ndarray) -> np.ndarray:
    """Each margin Platt-scaled on the fitting rows, then the higher probability."""
    probs = [platt(fit_m[:, j], fit_y).predict_proba(apply_m[:, [j]])[:, 1] for j in range(fit_m.shape[1])]
    return np.maximum(*probs)


def stacker(fit_m: np.ndarray, fit_y: np.ndarray) -> LogisticRegression:
    return LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(fit_m, fit_y)


def combine_stacked(fit_m: np.ndarray, fit_y: np.ndarray, apply_m: np.ndarray) -> np.ndarray:
    return stacker(fit_m, fit_y).decision_function(apply_m)


def write_model(
    head: functools.partial[np.ndarray], both_v: np.ndarray, labels: np.ndarray, figures: dict[str, Any]
) -> None:
    """The chosen MLP head and the stacker fitted on all of validation, calibrated as the linear model is, for the
    opt-in `combined` model (gateway/policy/guardrails/injection_minilm.py)."""
    stack = stacker(both_v, labels)
    slope, offset, raw_threshold = calibrate_margins(stack.decision_function(both_v), labels, TARGET_PRECISION)
    arrays = {
        **head.keywords,
        "stack": np.array([*stack.coef_[0], stack.intercept_[0]]),
        "calibration": np.array([slope, offset]),
    }
    np.savez(HEAD_FILE, **arrays)
    card = {
        "version": VERSION,
        "sha256": hashlib.sha256(HEAD_FILE.read_bytes()).hexdigest(),
        "head": "MLP 384-64-1 over all-MiniLM-L6-v2 (int8) embeddings of 254-token pieces, worst piece",
        "stacked_with": f"{LINEAR_VERSION} (its margin, clipped to +-30)",
        "calibration": {"slope": slope, "offset": offset, "raw_threshold_at_0.8": raw_threshold},
        "trained_on": LICENSES,
        "seed": SEED,
        "validation_recall_at_hard_negative_false_alarms": figures,
    }
    HEAD_FILE.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {HEAD_FILE} ({HEAD_FILE.stat().st_size} bytes) and its card")


Combiner = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def cross_fitted(combiner: Combiner, margins: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each validation row scored by a combiner fitted on the other folds."""
    out = np.zeros(len(labels))
    for fit_idx, apply_idx in StratifiedKFold(5, shuffle=True, random_state=SEED).split(margins, labels):
        out[apply_idx] = combiner(margins[fit_idx], labels[fit_idx], margins[apply_idx])
    return out


def linear_margins(model: LinearTextModel, texts: Sequence[str]) -> np.ndarray:
    """The linear model's margin of each text, clipped: a text without words (no window) would otherwise weigh in the
    combiners' fits as an outlier of -1e9."""
    margins = [-MARGIN_CLIP if (m := model.margin(t)) is None else m for t in texts]
    return np.clip(margins, -MARGIN_CLIP, MARGIN_CLIP)


def heads(x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The heads tried: logistic regressions of a few strengths and one small MLP (its margin: the logit)."""
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for c in (1.0, 4.0, 16.0):
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=SEED)
        lr.fit(x, y, sample_weight=weight)
        out[f"logistic C={c:g}"] = lr.decision_function
    # MLPClassifier takes no sample weights: texts of several pieces are rare enough that it does not matter much.
    mlp = MLPClassifier((64,), alpha=1e-3, max_iter=300, early_stopping=True, random_state=SEED).fit(x, y)

    out["mlp 64"] = functools.partial(head_logits, **mlp_weights(mlp))
    return out


def mlp_weights(mlp: MLPClassifier) -> dict[str, Any]:
    """The MLP's weights as head_logits takes them (and the shipped file stores them)."""
    return {
        "w1": mlp.coefs_[0].astype(np.float32),
        "b1": mlp.intercepts_[0].astype(np.float32),
        "w2": mlp.coefs_[1][:, 0].astype(np.float32),
        "b2": float(mlp.intercepts_[1][0]),
    }


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """(median, p99) milliseconds of `rounds` calls, after two warm-up calls."""
    fn(), fn()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, int(0.99 * len(times)))]


def bench(pieces: PieceEmbedder, head: Callable[[np.ndarray], np.ndarray], linear: LinearTextModel) -> None:
    """Cost per ~2,000-token prompt (benches/policy/bench_guardrails.py's prompt), the linear model as the reference."""
    from benches.policy.bench_guardrails import REQUEST

    text = model_input(REQUEST.messages[-1].content)
    cut = pieces.pieces(text)
    vectors = pieces.embedder.embed(cut)
    short = " ".join(text.split()[:28])
    print(
        f"\ncost per ~2,000-token prompt ({len(cut)} pieces; one onnxruntime thread; loaded machine), median / p99 ms:"
    )
    for label, fn, rounds in (
        (f"{LINEAR_VERSION} (reference)", lambda: linear.score(text), 2000),
        ("head, embeddings already computed", lambda: head(vectors).max(), 2000),
        ("head, embeddings computed here", lambda: head(pieces.embedder.embed(pieces.pieces(text))).max(), 30),
        (
            "reference: MiniLM on one 28-word prompt (the semantic cache's unit)",
            lambda: pieces.embedder.embed([short]),
            100,
        ),
    ):
        median, p99 = timed(fn, rounds)
        print(f"| {label} | {median:.3f} | {p99:.3f} |")


def table(label: str, columns: dict[str, np.ndarray], attack: np.ndarray, hard: np.ndarray) -> None:
    print(f"\n{label}: recall of attacks at hard-negative false-alarm rates {FALSE_ALARM_RATES}")
    for name, scores in columns.items():
        cells = [recall_at_false_alarms(scores, attack, hard, r)[1] for r in FALSE_ALARM_RATES]
        print(f"| {name} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "injection-corpora")
    parser.add_argument("--embeddings", type=Path, default=Path("/tmp/injection-minilm-embeddings.npz"))
    parser.add_argument("--train-limit", type=int, default=12000, help="train on a random sample of this many texts")
    parser.add_argument("--test", action="store_true", help="also score the public test splits (once, at the end)")
    parser.add_argument(
        "--write", action="store_true", help="write the chosen MLP head and stacker (the shipped files)"
    )
    parser.add_argument("--bench", action="store_true", help="also time the chosen head per 2,000-token prompt")
    args = parser.parse_args()
    rng = random.Random(SEED)
    # As train.py builds them: normalized texts, then the generated indirect pages from the same seed.
    examples = [replace(e, text=model_input(e.text)) for e in load(args.cache) if e.split != "test"]
    train = [e for e in examples if e.split == "train"]
    val = [e for e in examples if e.split == "validation"]
    train += indirect_documents(train, "train", 1500, rng)
    val += indirect_documents(val, "validation", 300, rng)
    train = random.Random(SEED).sample(train, min(args.train_limit, len(train)))
    pieces = PieceEmbedder(args.embeddings)
    print(f"train sample {len(train)} texts, validation {len(val)} texts", flush=True)

    x, owner, spent = pieces.embed([e.text for e in train])
    print(f"train: {len(x)} pieces, {spent:.0f} s embedding", flush=True)
    y = np.array([int(train[i].attack) for i in owner])
    candidates = heads(x, y, 1.0 / np.bincount(owner)[owner])

    xv, owner_v, spent = pieces.embed([e.text for e in val])
    print(f"validation: {len(xv)} pieces, {spent:.0f} s embedding", flush=True)
    labels = np.array([int(e.attack) for e in val])
    attack = labels == 1
    hard = np.array([not e.attack and e.corpus in HARD_NEGATIVE_CORPORA for e in val])
    linear = LinearTextModel(MODEL_FILE.read_bytes())
    lin_v = linear_margins(linear, [e.text for e in val])
    head_v = {name: worst(f(xv), owner_v, len(val)) for name, f in candidates.items()}
    table("validation, each head", {LINEAR_VERSION: lin_v, **head_v}, attack, hard)

    # The head is chosen by its recall at 2% (then 3%) false alarms on validation.
    chosen = max(head_v, key=lambda n: [recall_at_false_alarms(head_v[n], attack, hard, r)[1] for r in (0.02, 0.03)])
    both_v = np.column_stack([lin_v, head_v[chosen]])
    combos: dict[str, Combiner] = {"max(linear, head)": combine_max, "stacked logistic": combine_stacked}
    columns = {LINEAR_VERSION: lin_v, f"head ({chosen})": head_v[chosen]}
    columns |= {name: cross_fitted(c, both_v, labels) for name, c in combos.items()}
    table("validation, chosen head and combinations (combinations 5-fold cross-fitted)", columns, attack, hard)
    for corpus in sorted({e.corpus for e in val}):
        mask = np.array([e.corpus == corpus for e in val])
        for name, scores in columns.items():
            t = recall_at_false_alarms(scores, attack, hard, 0.02)[0]
            fa = (scores[mask & ~attack] >= t).mean() if (mask & ~attack).any() else float("nan")
            rc = (scores[mask & attack] >= t).mean() if (mask & attack).any() else float("nan")
            print(f"  {corpus:24s} {name:28s} at 2%: recall {rc:.3f} false alarms {fa:.3f}")

    if args.write:
        if not isinstance(candidates[chosen], functools.partial):
            raise SystemExit(f"the chosen head is {chosen}, not the MLP the shipped scorer runs")
        figures = {
            name: [recall_at_false_alarms(v, attack, hard, r)[1] for r in FALSE_ALARM_RATES]
            for name, v in columns.items()
        }
        write_model(candidates[chosen], both_v, labels, figures)
    if args.bench:
        bench(pieces, candidates[chosen], linear)
    if not args.test:
        return
    fitted = {name: (lambda m, c=c: c(both_v, labels, m)) for name, c in combos.items()}
    thresholds = {
        name: [recall_at_false_alarms(scores, attack, hard, r)[0] for r in FALSE_ALARM_RATES]
        for name, scores in {
            LINEAR_VERSION: lin_v,
            "head": head_v[chosen],
            **{name: f(both_v) for name, f in fitted.items()},
        }.items()
    }
    print(f"\ntest splits, scored once; thresholds set on validation at {FALSE_ALARM_RATES} false alarms")
    for set_name, rows in held_out_sets().items():
        texts = [model_input(r.text) for r in rows]
        xt, owner_t, spent = pieces.embed(texts)
        lin_t = linear_margins(linear, texts)
        head_t = worst(candidates[chosen](xt), owner_t, len(rows))
        both_t = np.column_stack([lin_t, head_t])
        scored = {LINEAR_VERSION: lin_t, "head": head_t, **{name: f(both_t) for name, f in fitted.items()}}
        y_t = np.array([r.attack for r in rows])
        for name, scores in scored.items():
            cells = []
            for t in thresholds[name]:
                flagged = scores >= t
                recall = (flagged & y_t).sum() / max(y_t.sum(), 1)
                fpr = (flagged & ~y_t).sum() / max((~y_t).sum(), 1)
                precision = (flagged & y_t).sum() / max(flagged.sum(), 1)
                cells.append(f"{precision:.3f} / {recall:.3f} / {fpr:.3f}")
            print(f"| {set_name} ({len(rows)}) | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
