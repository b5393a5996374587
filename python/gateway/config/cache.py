"""The schema of `cache:` (where entries live, how the semantic cache decides) and of a model's or route's `cache:`.

```yaml
cache:
  backend: memory            # memory | redis
  redis_url: redis://127.0.0.1:6379/0
  max_bytes: 268435456       # memory backend: LRU bounded by bytes
  embedding: {model: minilm-l6-int8}   # the semantic cache's local embedding model
models:
  - name: gpt-4o-mini
    cache: {exact: true, semantic: true, ttl_s: 3600}
routes:
  - name: auto
    cache: {exact: true, semantic: false, ttl_s: 600}
```
Caching is off unless the config or the request turns it on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import Strict

MAX_TTL_S = 30 * 86_400


class CachePolicyConfig(Strict):
    """A model's or route's caching: the default of calls that ask for it (CacheControl UNSPECIFIED)."""

    exact: bool = Field(default=True, description="Answer repeated identical requests from the cache.")
    semantic: bool = Field(default=False, description="Also answer requests that mean the same as a stored one.")
    ttl_s: int = Field(default=3600, ge=1, le=MAX_TTL_S, description="How long a stored answer stays servable.")
    shared: bool = Field(
        default=False,
        description="Entries serve every team (a public, non-personal route); otherwise no entry crosses teams.",
    )


class EmbeddingConfig(Strict):
    model: Literal["minilm-l6-int8"] = Field(
        default="minilm-l6-int8", description="all-MiniLM-L6-v2 int8 ONNX, run on the CPU by onnxruntime."
    )
    threads: int = Field(default=2, ge=1, le=64, description="onnxruntime intra-op threads.")
    max_batch: int = Field(default=16, ge=1, le=256, description="Concurrent prompts embedded in one model run.")
    timeout_s: float = Field(
        default=0.5, gt=0, le=30, description="A prompt not embedded within this (a saturated embedder) is a miss."
    )


class CacheConfig(Strict):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="redis:// or rediss:// (TLS).")
    key_prefix: str = Field(default="llmgw:cache:", min_length=1, max_length=64, description="Redis key prefix.")
    redis_timeout_s: float = Field(
        default=0.25, gt=0, le=10, description="A Redis command slower than this counts as the backend being down."
    )
    retry_after_s: float = Field(
        default=5.0, gt=0, le=600, description="After a Redis failure, calls skip the cache this long, then retry."
    )
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024, description="Memory backend: LRU bound in bytes.")
    max_entry_bytes: int = Field(default=1024 * 1024, ge=256, description="Longer answers are not stored.")
    hit_cost_usd: float = Field(default=0.0, ge=0, description="What a cache hit costs the caller (ledger, budget).")
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    similarity_threshold: float = Field(
        default=0.65,
        gt=0,
        le=1,
        description="Semantic candidates below this cosine are not considered; those above must pass verify. The "
        "default is the learned verdict's floor (verify-pair-v4): the lowest cosine it was trained to judge.",
    )
    semantic_candidates: int = Field(default=3, ge=1, le=32, description="Index neighbours checked by verify.")
    semantic_max_prompt_chars: int = Field(
        default=1000,
        ge=1,
        le=20_000,
        description="Longer last turns use the exact cache only: the model reads at most 256 tokens (about 1,000 "
        "characters of English), so longer prompts that differ past that point would look identical to it; verify "
        "and the index keep each prompt whole.",
    )
    coalesce_wait_s: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="A unary call that misses while an identical one is asking the provider waits up to this long "
        "for that answer instead of asking too; 0 turns coalescing off.",
    )
    max_classification: Literal["public", "internal", "confidential", "restricted"] = Field(
        default="confidential",
        description="Calls classified above this (by their key's labels, metadata or what the input guardrails "
        "found) neither read nor fill the cache: a restricted prompt's answer is never kept, in memory or in Redis.",
    )
    max_semantic_entries: int = Field(
        default=100_000,
        ge=1,
        description="Prompts in each process's semantic index (at most about 3 KB each: the vector and a prompt of "
        "up to semantic_max_prompt_chars), oldest out first; with redis, also the feed's length.",
    )
