"""The response cache a config asks for: its backend, its embedding model (loaded on first use) and verify stage."""

from __future__ import annotations

from gateway.cache.backends import CacheBackend
from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.backends.redis import RedisBackend
from gateway.cache.semantic_glue import load_embedder, verify_candidates
from gateway.cache.service import ResponseCache
from gateway.config.schema import GatewayConfig
from gateway.observe.metrics import GatewayMetrics


def build_cache(config: GatewayConfig, metrics: GatewayMetrics | None) -> ResponseCache:
    """Always built: a request may turn caching on (CacheControl) where the config leaves it off."""
    settings = config.cache
    policies = {m.name: m.cache for m in config.models if m.cache is not None}
    policies.update({r.name: r.cache for r in config.routes if r.cache is not None})
    backend: CacheBackend
    feed = None
    if settings.backend == "redis":
        backend = feed = RedisBackend(
            settings.redis_url,
            prefix=settings.key_prefix,
            timeout_s=settings.redis_timeout_s,
            feed_length=settings.max_semantic_entries,
        )
    else:
        backend = MemoryBackend(settings.max_bytes)
    cache = ResponseCache(
        settings,
        policies,
        backend,
        load_embedder=lambda: load_embedder(settings.embedding),
        verify=verify_candidates,
        metrics=metrics,
        max_semantic_entries=settings.max_semantic_entries,
        feed=feed,
    )
    if isinstance(backend, MemoryBackend):
        backend.on_evict = cache.forget
    return cache
