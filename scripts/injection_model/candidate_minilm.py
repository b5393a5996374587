"""Candidate (b), measured beside the shipped linear model on the same validation splits: a logistic-regression head
over the all-MiniLM-L6-v2 embeddings the semantic cache computes (gateway.cache.semantic.Embedder, int8 ONNX).

    .venv/bin/python scripts/injection_model/candidate_minilm.py [--train-limit 6000]

MiniLM reads 256 tokens: a longer text is cut into 256-token pieces and scored by its worst piece, as the linear
model scores its worst window. Prints validation recall at precision 0.97 per corpus (train.py's criterion) and the
embedding cost per piece. Nothing here ships; docs/guardrails.md records what it printed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpora import ROOT, Example, load
from train import SEED, TARGET_PRECISION, indirect_documents, judge

from gateway.cache.semantic.embedder import Embedder

PIECE_WORDS = 160
"""~256 MiniLM tokens of English prose."""


def pieces(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i : i + PIECE_WORDS]) for i in range(0, max(len(words), 1), PIECE_WORDS)] or [text]


def embed(embedder: Embedder, examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of every piece, and the example each piece belongs to."""
    texts, owner = [], []
    for n, e in enumerate(examples):
        for piece in pieces(e.text):
            texts.append(piece)
            owner.append(n)
    vectors = [embedder.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    return np.vstack(vectors), np.array(owner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "injection-corpora")
    parser.add_argument("--train-limit", type=int, default=6000, help="train on a random sample of this many texts")
    args = parser.parse_args()
    rng = random.Random(SEED)
    examples = [e for e in load(args.cache) if e.split != "test"]
    train = [e for e in examples if e.split == "train"]
    val = [e for e in examples if e.split == "validation"]
    train += indirect_documents(train, "train", 1500, rng)
    val += indirect_documents(val, "validation", 300, rng)
    train = rng.sample(train, min(args.train_limit, len(train)))
    embedder = Embedder(intra_op_threads=1, correct_spelling=False)

    x, owner = embed(embedder, train)
    y = np.array([int(train[i].attack) for i in owner])
    head = LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=SEED)
    head.fit(x, y, sample_weight=1.0 / np.bincount(owner)[owner])

    started = time.perf_counter()
    xv, owner_v = embed(embedder, val)
    per_piece_ms = (time.perf_counter() - started) * 1000 / len(xv)
    margins = np.full(len(val), -np.inf)
    np.maximum.at(margins, owner_v, head.decision_function(xv))
    worst, pooled, per_corpus = judge(margins, val)
    print(f"trained on {len(train)} texts; validation pooled recall {pooled:.3f} at precision {TARGET_PRECISION}")
    print(f"worst {worst:.3f} {per_corpus}")
    print(f"embedding: {per_piece_ms:.2f} ms per piece (batches of 64, one thread, loaded machine)")


if __name__ == "__main__":
    main()
