"""ResponseCache without a server, on a clock the test moves: what a plan allows, TTLs to the second, the memory
backend's byte bound, and a backend that fails being skipped for retry_after_s, then tried again."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.cache.backends import BackendUnavailable, PurgeFilter
from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.entries import CacheEntry, EntryKey
from gateway.cache.semantic_index import Candidate
from gateway.cache.service import ResponseCache
from gateway.chat import CacheControl, CacheMode, ChatRequest, ChatResult, Message, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.records.classification import Classification

ANSWER = ChatResult("", "gpt-4o", "An answer.", "stop", Usage(10, 3))


PUBLIC = Classification.PUBLIC


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class FlakyBackend(MemoryBackend):
    """A memory backend that fails while `down` is set, and counts the calls that reached it."""

    def __init__(self) -> None:
        super().__init__(1 << 20)
        self.down = False
        self.calls = 0

    async def get(self, key: EntryKey, now: float) -> CacheEntry | None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("redis: ConnectionError: refused")
        return await super().get(key, now)

    async def put(self, entry: CacheEntry, now: float) -> None:
        self.calls += 1
        if self.down:
            raise BackendUnavailable("redis: ConnectionError: refused")
        await super().put(entry, now)


def no_semantic(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
    return None, []


def request(text: str = "What is a gateway?", model: str = "gpt", **control: object) -> ChatRequest:
    chat = ChatRequest(model, [Message("user", text)])
    if control:
        chat.cache = CacheControl(**control)  # type: ignore[arg-type]
    return chat


def cache(backend: MemoryBackend, clock: Clock, **config: object) -> ResponseCache:
    return ResponseCache(
        CacheConfig(**config),  # type: ignore[arg-type]
        {"gpt": CachePolicyConfig(ttl_s=60), "off": CachePolicyConfig(exact=False, semantic=False)},
        backend,
        load_embedder=None,
        verify=no_semantic,
        clock=clock,
    )


async def store(responses: ResponseCache, chat: ChatRequest, team: str = "t") -> None:
    plan = responses.plan(chat, team, chat.model, classification=PUBLIC)
    assert plan is not None
    assert await responses.store(plan, ANSWER, Usage(10, 3), served_model="gpt", provider="openai", cost_usd=1e-5)


async def lookup(responses: ResponseCache, chat: ChatRequest, team: str = "t") -> bool:
    plan = responses.plan(chat, team, chat.model, classification=PUBLIC)
    assert plan is not None
    return await responses.lookup(plan) is not None


def test_calls_classified_above_the_limit_do_not_touch_the_cache() -> None:
    default = cache(MemoryBackend(1 << 20), Clock())
    assert default.plan(request(), "t", "gpt", classification=Classification.CONFIDENTIAL) is not None
    assert default.plan(request(), "t", "gpt", classification=Classification.RESTRICTED) is None
    public_only = cache(MemoryBackend(1 << 20), Clock(), max_classification="public")
    assert public_only.plan(request(), "t", "gpt", classification=Classification.PUBLIC) is not None
    assert public_only.plan(request(), "t", "gpt", classification=Classification.INTERNAL) is None
    # Asking for the cache explicitly does not lift the limit.
    assert (
        public_only.plan(request(mode=CacheMode.READ_WRITE), "t", "gpt", classification=Classification.INTERNAL) is None
    )


def test_plans_follow_the_config_and_the_request() -> None:
    responses = cache(MemoryBackend(1 << 20), Clock())
    assert responses.plan(request(model="unconfigured"), "t", "gpt", classification=PUBLIC) is None
    assert responses.plan(request(model="off"), "t", "gpt", classification=PUBLIC) is None
    assert responses.plan(request(mode=CacheMode.OFF), "t", "gpt", classification=PUBLIC) is None
    on_request = responses.plan(
        request(model="unconfigured", mode=CacheMode.READ_WRITE, ttl_s=5), "t", "gpt", classification=PUBLIC
    )
    assert on_request is not None
    assert (on_request.read_exact, on_request.write, on_request.ttl_s) == (True, True, 5)
    read_only = responses.plan(request(mode=CacheMode.READ_ONLY), "t", "gpt", classification=PUBLIC)
    assert read_only is not None
    assert (read_only.read_exact, read_only.write) == (True, False)
    write_only = responses.plan(request(mode=CacheMode.WRITE_ONLY), "t", "gpt", classification=PUBLIC)
    assert write_only is not None
    assert (write_only.read_exact, write_only.write) == (False, True)
    # No embedder: nothing is semantic, whatever the request allows.
    semantic = responses.plan(request(allow_semantic=True), "t", "gpt", classification=PUBLIC)
    assert semantic is not None
    assert not semantic.read_semantic


async def test_an_entry_lives_exactly_its_ttl() -> None:
    clock = Clock()
    responses = cache(MemoryBackend(1 << 20), clock)
    await store(responses, request())
    clock.now += 59.9
    assert await lookup(responses, request())
    clock.now += 0.1
    assert not await lookup(responses, request())


async def test_the_memory_backend_evicts_the_least_recently_used_within_its_bytes() -> None:
    clock = Clock()
    backend = MemoryBackend(2_000)  # three entries of ~620 bytes
    responses = cache(backend, clock)
    for i in range(3):
        await store(responses, request(f"question {i}"))
    assert await lookup(responses, request("question 0"))  # now the most recent
    await store(responses, request("question 3"))
    stats = await backend.stats(None)
    assert stats.bytes <= 2_000
    assert await lookup(responses, request("question 0"))
    assert not await lookup(responses, request("question 1"))
    assert stats.entries == 3
    assert len(await backend.purge(PurgeFilter(team="t"))) == 3


async def test_a_failing_backend_is_skipped_for_retry_after_then_tried_again() -> None:
    clock = Clock()
    backend = FlakyBackend()
    responses = cache(backend, clock, retry_after_s=5.0)
    await store(responses, request())
    backend.down = True
    assert not await lookup(responses, request())
    calls = backend.calls
    clock.now += 4.9
    assert not await lookup(responses, request())
    assert backend.calls == calls  # skipped: no call waits on a backend known to be down
    assert not (await responses.stats(None)).available
    backend.down = False
    clock.now += 0.1
    assert await lookup(responses, request())
    assert (await responses.stats(None)).available


@pytest.mark.parametrize(
    ("cached", "asked"),
    [
        (request(), request(model="other", mode=CacheMode.READ_WRITE)),
        (request(namespace="a"), request(namespace="b")),
    ],
)
async def test_entries_are_partitioned(cached: ChatRequest, asked: ChatRequest) -> None:
    responses = cache(MemoryBackend(1 << 20), Clock())
    await store(responses, cached)
    assert not await lookup(responses, asked)
    assert not await lookup(responses, cached, team="another team")
    assert await lookup(responses, cached)


async def test_a_caller_may_shorten_the_configs_ttl_never_lengthen_it() -> None:
    responses = cache(MemoryBackend(1 << 20), Clock())
    shorter = responses.plan(request(ttl_s=5), "t", "gpt", classification=PUBLIC)
    longer = responses.plan(request(ttl_s=86_400), "t", "gpt", classification=PUBLIC)
    assert shorter is not None
    assert longer is not None
    assert (shorter.ttl_s, longer.ttl_s) == (5, 60)


async def test_entries_are_partitioned_by_the_routers_first_choice() -> None:
    responses = cache(MemoryBackend(1 << 20), Clock())
    plan = responses.plan(request(), "t", "big", classification=PUBLIC)
    assert plan is not None
    await responses.store(plan, ANSWER, Usage(10, 3), served_model="big", provider="openai", cost_usd=1e-5)
    small = responses.plan(request(), "t", "small", classification=PUBLIC)
    assert small is not None
    assert await responses.lookup(small) is None
    big = responses.plan(request(), "t", "big", classification=PUBLIC)
    assert big is not None
    assert await responses.lookup(big) is not None


async def test_an_unreadable_entry_is_a_miss_not_a_failure() -> None:
    class Broken(MemoryBackend):
        async def get(self, key: EntryKey, now: float) -> CacheEntry | None:
            raise KeyError("key")  # as a decode of another release's entry would

    responses = cache(Broken(1 << 20), Clock())
    assert not await lookup(responses, request())
