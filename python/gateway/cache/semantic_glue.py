"""Placeholder until the semantic branch lands."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.cache.semantic_index import Candidate
from gateway.cache.service import Embedder
from gateway.config.cache import EmbeddingConfig


async def load_embedder(config: EmbeddingConfig) -> Embedder:
    raise RuntimeError("not yet")


def verify_candidates(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
    return None, []
