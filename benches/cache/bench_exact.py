"""The exact cache's cost per call on the memory backend with 10,000 entries stored: deciding the plan (fingerprint
included) plus the lookup, on a miss and on a hit; the aim is a miss under 20 µs.

.venv/bin/pytest benches/cache/bench_exact.py --benchmark-enable --benchmark-columns=min,median,max,ops

Each round is one call; the lookup coroutine is driven by hand (the memory backend never suspends), so the figure is
the cache's own cost without an event loop's scheduling. p50 and p99 are in extra_info and printed. The reference in
the same run is the floor of any exact cache: BLAKE2b of the prompt's bytes and one dict lookup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benches.policy.bench_admission import percentiles
from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.semantic_index import Candidate
from gateway.cache.service import ResponseCache
from gateway.chat import ChatRequest, ChatResult, Message, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig

T = TypeVar("T")

ENTRIES = 10_000
ROUNDS = 20_000
SYSTEM = Message("system", "You are a concise assistant.")


def request(i: int) -> ChatRequest:
    return ChatRequest(
        "gpt", [SYSTEM, Message("user", f"Summarise the benefits of a central LLM gateway, take {i}.")], max_tokens=64
    )


def finish(step: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that never suspends to its end."""
    try:
        step.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("the coroutine suspended: this bench needs a backend that answers at once")


def no_semantic(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
    return None, []


@pytest.fixture(scope="module")
def cache() -> ResponseCache:
    cache = ResponseCache(
        CacheConfig(), {"gpt": CachePolicyConfig()}, MemoryBackend(1 << 30), load_embedder=None, verify=no_semantic
    )
    answer = ChatResult("", "gpt-4o-mini", "A central gateway " * 20, "stop", Usage(40, 80))
    for i in range(ENTRIES):
        plan = cache.plan(request(i), "team", "gpt")
        assert plan is not None
        finish(cache.store(plan, answer, Usage(40, 80), served_model="gpt", provider="openai", cost_usd=1e-4))
    return cache


def run(benchmark: BenchmarkFixture, cache: ResponseCache, offset: int) -> int:
    requests = iter([request(offset + i % ENTRIES) for i in range(ROUNDS + 100)])
    hits = 0

    def lookup() -> None:
        nonlocal hits
        plan = cache.plan(next(requests), "team", "gpt")
        assert plan is not None
        hits += finish(cache.lookup(plan)) is not None

    benchmark.pedantic(lookup, rounds=ROUNDS, iterations=1, warmup_rounds=100)
    percentiles(benchmark)
    return hits


def test_exact_miss(benchmark: BenchmarkFixture, cache: ResponseCache) -> None:
    assert run(benchmark, cache, offset=ENTRIES) == 0


def test_exact_hit(benchmark: BenchmarkFixture, cache: ResponseCache) -> None:
    assert run(benchmark, cache, offset=0) == ROUNDS + 100


def test_reference_blake2b_and_dict_lookup(benchmark: BenchmarkFixture) -> None:
    table = {hashlib.blake2b(request(i).messages[-1].content.encode()).digest(): i for i in range(ENTRIES)}
    prompts = iter([request(ENTRIES + i).messages[-1].content for i in range(ROUNDS + 100)])

    def lookup() -> None:
        table.get(hashlib.blake2b(next(prompts).encode()).digest())

    benchmark.pedantic(lookup, rounds=ROUNDS, iterations=1, warmup_rounds=100)
    percentiles(benchmark)
