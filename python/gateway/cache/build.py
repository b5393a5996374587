"""The response cache a config asks for: its backend, its embedding model (loaded on first use) and verify stage.

Only what the config uses is imported: the Redis client with the redis backend, numpy, the embedding runtime and the
verify stage's word lists with the first semantic lookup (a request may ask for the semantic cache where the config
does not, so they are loaded on demand, not decided at start)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cache.backends import CacheBackend
from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.semantic_index import Candidate, SnapshotFolder
from gateway.cache.service import ResponseCache, Verify
from gateway.config.cache import EmbeddingConfig
from gateway.config.schema import GatewayConfig
from gateway.observe.metrics import GatewayMetrics

if TYPE_CHECKING:
    from gateway.cache.semantic.batching import BatchingEmbedder
    from gateway.cache.semantic.embedder import Embedder
    from gateway.cache.semantic.matcher import SemanticMatcher
    from gateway.cache.service import Vector


def build_cache(
    config: GatewayConfig, metrics: GatewayMetrics | None, *, state_dir: Path | None = None
) -> ResponseCache:
    """Always built: a request may turn caching on (CacheControl) where the config leaves it off. With redis and a
    `state_dir`, the processes using that folder share one semantic index there (semantic_index.SnapshotFolder)."""
    settings = config.cache
    policies = {m.name: m.cache for m in config.models if m.cache is not None}
    policies.update({r.name: r.cache for r in config.routes if r.cache is not None})
    backend: CacheBackend
    feed = None
    snapshots = None
    if settings.backend == "redis":
        from gateway.cache.backends.redis import RedisBackend

        backend = feed = RedisBackend(
            settings.redis_url,
            prefix=settings.key_prefix,
            timeout_s=settings.redis_timeout_s,
            feed_length=settings.max_semantic_entries,
        )
        if state_dir is not None:
            snapshots = SnapshotFolder(state_dir / "semantic")
    else:
        backend = MemoryBackend(settings.max_bytes)
    cache = ResponseCache(
        settings,
        policies,
        backend,
        load_embedder=lambda: load_embedder(settings.embedding),
        verify=verify_when_needed(settings.similarity_threshold, settings.semantic_candidates),
        metrics=metrics,
        feed=feed,
        snapshots=snapshots,
    )
    if isinstance(backend, MemoryBackend):
        backend.on_evict = cache.forget
    return cache


class _Embedding:
    """The batching embedder as the cache uses it."""

    def __init__(self, model: Embedder, max_batch: int) -> None:
        from gateway.cache.semantic.batching import BatchingEmbedder

        self.dim = model.dim
        self._batching: BatchingEmbedder = BatchingEmbedder(model, max_batch)

    async def embed(self, text: str) -> Vector:
        vector: Vector = await self._batching.embed(text)
        return vector

    async def close(self) -> None:
        self._batching.close()


async def load_embedder(config: EmbeddingConfig) -> _Embedding:
    """Loads the model off the event loop (about 0.3 s); EmbeddingModelMissing names the pip command if absent."""
    from gateway.cache.semantic.embedder import Embedder

    model = await asyncio.to_thread(Embedder, config.threads)
    return _Embedding(model, config.max_batch)


def verify_with(matcher: SemanticMatcher) -> Verify:
    def verify(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
        match = matcher.match(asked, [(i, c.similarity, c.prompt) for i, c in enumerate(candidates)])
        return (candidates[match.entry_id] if match.entry_id is not None else None), list(match.reasons)

    return verify


def verify_when_needed(similarity_threshold: float, candidates: int) -> Verify:
    """verify_with a SemanticMatcher built at the first semantic lookup (its word lists cost ~2 MB)."""
    built: list[Verify] = []

    def verify(asked: str, found: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
        if not built:
            from gateway.cache.semantic.matcher import SemanticMatcher

            built.append(verify_with(SemanticMatcher(similarity_threshold, candidates)))
        return built[0](asked, found)

    return verify
