"""The prompt's embedding computed before routing for a learned route's query-type cluster (ResponseCache
.prompt_vector): only for a call the semantic cache would embed anyway unless the route asks for every call, and
reused by the call's semantic lookup and store, so the call is embedded once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.service import ResponseCache
from gateway.chat import ChatRequest, ChatResult, Message, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.records.classification import Classification
from tests.cache.test_semantic_index import accept_first

PUBLIC = Classification.PUBLIC


class CountingEmbedder:
    dim = 8

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def embed(self, text: str) -> npt.NDArray[np.float32]:
        self.texts.append(text)
        return np.ones(self.dim, dtype=np.float32) / np.sqrt(self.dim)

    async def close(self) -> None:
        pass


def responses(embedder: CountingEmbedder) -> ResponseCache:
    async def load() -> CountingEmbedder:
        return embedder

    return ResponseCache(
        CacheConfig(),
        {"semantic": CachePolicyConfig(semantic=True, ttl_s=60), "exact": CachePolicyConfig(ttl_s=60)},
        MemoryBackend(1 << 20),
        load_embedder=load,
        verify=accept_first,
    )


async def test_a_call_the_semantic_cache_embeds_is_embedded_once() -> None:
    embedder = CountingEmbedder()
    cache = responses(embedder)
    chat = ChatRequest("semantic", [Message("user", "What is a gateway?")])
    vector = await cache.prompt_vector(chat, "t", classification=PUBLIC, always=False)
    assert vector is not None
    plan = cache.plan(chat, "t", "semantic", classification=PUBLIC)
    assert plan is not None
    plan.vector = vector  # as the cache stage hands it over
    assert await cache.lookup(plan) is None
    answer = ChatResult("id", "m", "A gateway forwards calls.", "stop", Usage(5, 5))
    assert await cache.store(plan, answer, Usage(5, 5), served_model="m", provider="p", cost_usd=0.0)
    assert embedder.texts == ["What is a gateway?"]  # routing's embedding served the lookup and the store


async def test_other_calls_are_embedded_only_when_the_route_asks() -> None:
    embedder = CountingEmbedder()
    cache = responses(embedder)
    exact_only = ChatRequest("exact", [Message("user", "What is a gateway?")])
    assert await cache.prompt_vector(exact_only, "t", classification=PUBLIC, always=False) is None
    uncached = ChatRequest("nothing", [Message("user", "What is a gateway?")])
    assert await cache.prompt_vector(uncached, "t", classification=PUBLIC, always=False) is None
    assert embedder.texts == []
    assert await cache.prompt_vector(uncached, "t", classification=PUBLIC, always=True) is not None
    not_user_text = ChatRequest("semantic", [Message("user", "hi"), Message("assistant", "hello")])
    assert await cache.prompt_vector(not_user_text, "t", classification=PUBLIC, always=True) is None
    assert embedder.texts == ["What is a gateway?"]
