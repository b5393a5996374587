"""The opt-in `combined` injection model: the linear model's margin stacked with a small head over MiniLM.

The head is an MLP (384 -> 64 ReLU -> 1) over the semantic cache's all-MiniLM-L6-v2 sentence embedding (int8 ONNX,
gateway.cache.semantic.Embedder). MiniLM reads 256 tokens, so a text is cut into pieces of 254 word pieces that
overlap by 32 and the head's margin is that of its worst piece. A logistic regression over the two margins (the linear
model's, the head's worst piece's) gives the combined margin, calibrated as the linear model's is: 0.8 where validation
precision reaches 0.97. Trained and measured by scripts/injection_model/candidate_minilm.py (docs/guardrails.md,
"Candidate (b) measured"); the weights (float32, ~100 kB) ship in models/injection_minilm.npz, read without pickle.

Cost: one MiniLM pass per piece, ~0.25 s for a 2,000-token prompt where one short prompt costs 2.3 ms, ~500x
the linear model (docs/benchmarks.md): opt in per team with `guardrails.input.injection.model: combined`.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Final

import numpy as np

from gateway.cache.semantic.embedder import Embedder
from gateway.policy.guardrails.injection import MARGIN_CLIP

MODEL_FILE: Final = Path(__file__).parent / "models" / "injection_minilm.npz"
PIECE_TOKENS: Final = 254
"""MiniLM's 256 positions less [CLS] and [SEP]."""
OVERLAP_TOKENS: Final = 32


def head_logits(vectors: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float) -> np.ndarray:
    """The MLP's logit for each embedding row (scikit-learn's MLPClassifier forward pass, ReLU then one unit)."""
    hidden = np.maximum(vectors @ w1 + b1, 0.0)
    return np.asarray(hidden @ w2 + b2, dtype=np.float64)


class MiniLMHead:
    """Scores a text from the linear model's margin and the MiniLM head's. Thread-safe (nothing mutates after load)."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        with np.load(MODEL_FILE) as data:
            self._w1 = data["w1"]
            self._b1 = data["b1"]
            self._w2 = data["w2"]
            self._b2 = float(data["b2"])
            self._stack = data["stack"].astype(np.float64)
            """(weight of the linear model's margin, weight of the head's margin, bias)"""
            self._slope, self._offset = (float(v) for v in data["calibration"])
        self.version = str(json.loads(MODEL_FILE.with_suffix(".json").read_text())["version"])
        self._embedder = embedder or Embedder(intra_op_threads=1, correct_spelling=False)

    def head_margin(self, text: str) -> float:
        """The head's margin for the text's most suspicious piece."""
        vectors = self._embedder.embed(self._embedder.pieces(text, PIECE_TOKENS, OVERLAP_TOKENS))
        return float(head_logits(vectors, self._w1, self._b1, self._w2, self._b2).max())

    def score(self, text: str, linear_margin: float) -> float:
        """Calibrated score in [0, 1] of a prepared text (injection.model_input) given the linear model's margin."""
        linear = min(max(linear_margin, -MARGIN_CLIP), MARGIN_CLIP)
        margin = self._stack[0] * linear + self._stack[1] * self.head_margin(text) + self._stack[2]
        return 1.0 / (1.0 + math.exp(-min(max(self._slope * margin + self._offset, -50.0), 50.0)))


@functools.cache
def shared_head() -> MiniLMHead:
    """One head (and one ONNX session) per process, loaded when the first guard that opts in is built."""
    return MiniLMHead()
