"""The embedding model with int8 matrix products, built once from the packaged model and kept in the user's cache.

The packaged "int8" model stores int8 weights behind DequantizeLinear nodes, which onnxruntime folds into float32
weights at load: every product then runs in float32. onnxruntime's own dynamic quantization (its `quantization`
tool, which reads the graph with the ONNX project's `onnx` package) rewrites those products as MatMulInteger on int8
weights and activations quantized per call: 2.3 ms instead of 4.0 ms for a 28-word prompt on 2 cores here, with the
same precision and recall on the labelled near-miss pairs (docs/benchmarks.md). Building it takes about 1.3 s, so the
result is kept under `$XDG_CACHE_HOME/llm-gateway` (default `~/.cache`), named by the source model's digest and the
onnxruntime version; where that folder cannot be written, the model is built in memory at each start.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

CACHE_DIR_ENV: Final = "XDG_CACHE_HOME"


def int8_model(source: Path, source_digest: str) -> Path | bytes | None:
    """The quantized model (a path in the cache folder, or bytes when it cannot be kept); None when the
    quantization tool is not installed (the caller then runs the source model as it is)."""
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]  # no stubs
        from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
    except ImportError:
        log.info("onnx is not installed: the embedding model runs its products in float32 (pip install onnx)")
        return None
    name = f"minilm-l6-v2-dynamic-int8-{source_digest[:16]}-ort{ort.__version__}.onnx"
    target = _cache_dir() / name
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="gateway-embedding-") as scratch:
        folded = Path(scratch) / "folded.onnx"
        quantized = Path(scratch) / "int8.onnx"
        # Basic optimisation only (constant folding turns the stored int8 weights back into float ones); the
        # hardware-specific passes run when the quantized model is loaded.
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        quantize_dynamic(folded, quantized, weight_type=QuantType.QInt8)
        data = quantized.read_bytes()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(target)  # atomic: a concurrent start reads either nothing or the whole file
    except OSError as err:
        log.info("cannot keep the int8 embedding model in %s (%s): rebuilt at each start", target.parent, err)
        return data
    return target


def _cache_dir() -> Path:
    root = os.environ.get(CACHE_DIR_ENV) or str(Path.home() / ".cache")
    return Path(root) / "llm-gateway"
