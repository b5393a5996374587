"""The domain of an embedding call, independent of protobuf, HTTP and any provider's wire format.

A vector is an `array.array("f")`: float32 as every embedding API produces them, 4 bytes a value instead of a Python
float's 24, and `tobytes()` is already the packed little-endian form OpenAI's `encoding_format: base64` carries (the
gateway runs on little-endian machines only; importing this module checks).
"""

from __future__ import annotations

import base64
import sys
from array import array
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from gateway.chat import CacheControl

Vector: TypeAlias = "array[float]"
"""array("f"): float32 values."""

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("gateway.embeddings packs vectors as little-endian float32 and needs a little-endian machine")


class EmbeddingEncoding(StrEnum):
    FLOAT = "float"
    """Vectors as lists of numbers."""
    BASE64 = "base64"
    """Vectors packed as little-endian float32 (gRPC: raw bytes; HTTP: their base64, as OpenAI sends them)."""


@dataclass(slots=True)
class EmbedRequest:
    """A validated embedding request, as every pipeline stage and provider sees it."""

    model: str
    inputs: list[str]
    dimensions: int | None = None
    """Shorter vectors than the model's own, where the model supports it; None: the model's length."""
    encoding: EmbeddingEncoding = EmbeddingEncoding.FLOAT
    user: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    cache: CacheControl | None = None
    batch: bool = False
    """Batch priority: waits behind interactive calls when targets are rate-limited."""
    text_chars: int = 0
    """Characters of all inputs: size limits and token bounds."""


@dataclass(slots=True)
class EmbedResult:
    """A provider's vectors for one batch of inputs, in the inputs' order."""

    upstream_model: str
    vectors: list[Vector]
    prompt_tokens: int | None = None
    """The tokens the provider reports it billed; None when it reports none (then the gateway counts them)."""


@dataclass(slots=True)
class Embedding:
    """One input's vector as the caller gets it."""

    vector: Vector
    cached: bool = False
    """Served by the gateway's cache, not by a provider now."""
    tokens: int = 0
    """For a cached vector: its input's tokens, as stored with it (the call's usage reports them as cached)."""


def vector(values: list[float]) -> Vector:
    """A vector from a provider's JSON numbers."""
    return array("f", values)


def unpack(packed: bytes) -> Vector:
    """A vector from little-endian float32 bytes (OpenAI's base64 encoding, decoded; the cache's entries)."""
    out = array("f")
    out.frombytes(packed)
    return out


def unpack_base64(text: str) -> Vector:
    return unpack(base64.b64decode(text))


def pack_base64(values: Vector) -> str:
    return base64.b64encode(values.tobytes()).decode("ascii")
