"""A gateway with bedrock providers, end to end through the gRPC stubs: Chat and ChatStream against the fake
Bedrock (signed requests, event-stream answers), retries on throttling, AWS errors as routing sees them, a client's
cancel reaching the upstream, the region feeding residency, and Embed with Titan and Cohere models."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.fakes import FakeBedrock
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import fake_vector
from tests.server.fixtures import AUTH, StartGateway

Stub = gateway_pb2_grpc.GatewayStub


def ask(model: str = "claude", text: str = "hello") -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[pb.Message(role="user", content=text)])


def attempts(response: pb.ChatResponse | pb.ChatChunk) -> list[tuple[str, str, str]]:
    return [(a.model, a.outcome, a.reason) for a in response.route.attempts]


async def gateway(start_gateway: StartGateway, fakes: list[FakeBedrock], route: str = "", extra: str = "") -> Stub:
    """Providers b0, b1... on the fakes, models claude (on b0), claude1 (on b1)..., and `route` as route `main`."""
    providers = "\n".join(
        f"  - {{name: b{i}, type: bedrock, region: {f.region}, base_url: '{f.url}', timeout_s: 5}}"
        for i, f in enumerate(fakes)
    )
    models = "\n".join(
        f"  - {{name: claude{i or ''}, provider: b{i}, upstream_model: 'us.anthropic.claude-3-5-haiku-20241022-v1:0',"
        " input_cost_per_mtok: 0.8, output_cost_per_mtok: 4.0}"
        for i in range(len(fakes))
    )
    routes = f"routes:\n  - name: main\n{route}\n" if route else ""
    _, channel = await start_gateway(f"providers:\n{providers}\nmodels:\n{models}\n{routes}{extra}")
    return gateway_pb2_grpc.GatewayStub(channel)


async def test_chat_and_chat_stream(start_gateway: StartGateway, fake_bedrock: FakeBedrock) -> None:
    stub = await gateway(start_gateway, [fake_bedrock])
    fake_bedrock.reply("Hello from Bedrock.", prompt_tokens=1000, completion_tokens=500)
    response = await stub.Chat(ask(), metadata=AUTH)
    assert (response.model, response.provider) == ("claude", "b0")
    assert response.message.content == "Hello from Bedrock."
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (1000, 500)
    assert response.usage.cost_usd == pytest.approx(0.0008 + 0.002)
    chunks = [chunk async for chunk in stub.ChatStream(ask(), metadata=AUTH)]
    assert "".join(c.delta for c in chunks) == fake_bedrock.default_answer.text
    assert len(chunks) > 3
    assert chunks[-1].finish_reason == "stop"
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (13, 9)
    assert [r.path for r in fake_bedrock.requests] == [
        "/model/us.anthropic.claude-3-5-haiku-20241022-v1:0/converse",
        "/model/us.anthropic.claude-3-5-haiku-20241022-v1:0/converse-stream",
    ]


async def test_throttling_is_retried_after_its_delay(start_gateway: StartGateway, fake_bedrock: FakeBedrock) -> None:
    stub = await gateway(
        start_gateway,
        [fake_bedrock],
        "    targets: [{model: claude}]\n    retries: {max_attempts: 2, backoff_ms: 1}\n    queue: {max_size: 0}",
    )
    fake_bedrock.fail(429, retry_after=1)
    started = time.monotonic()
    response = await stub.Chat(ask("main"), metadata=AUTH, timeout=20)
    assert attempts(response) == [("claude", "error", "UPSTREAM_RATE_LIMITED"), ("claude", "ok", "")]
    assert time.monotonic() - started >= 1
    assert len(fake_bedrock.requests) == 2


FALLBACK = "    strategy: fallback\n    targets: [{model: claude}, {model: claude1}]\n    retries: {max_attempts: 3}"


async def test_a_validation_error_is_not_retried(start_gateway: StartGateway, fake_providers: FakeProviders) -> None:
    a, b = [await fake_providers.start("bedrock") for _ in range(2)]
    stub = await gateway(start_gateway, [a, b], FALLBACK)
    a.fail(400, message="messages.0.content.0.text: too long")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask("main"), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too long" in (caught.value.details() or "")
    assert (len(a.requests), len(b.requests)) == (1, 0)


async def test_access_denied_skips_the_target(start_gateway: StartGateway, fake_providers: FakeProviders) -> None:
    a, b = [await fake_providers.start("bedrock") for _ in range(2)]
    stub = await gateway(start_gateway, [a, b], FALLBACK)
    a.fail(403)
    response = await stub.Chat(ask("main"), metadata=AUTH)
    assert attempts(response) == [("claude", "error", "PROVIDER_AUTH_FAILED"), ("claude1", "ok", "")]
    assert (len(a.requests), len(b.requests)) == (1, 1)  # not retried on the refusing target


async def test_an_exception_frame_mid_stream_ends_the_stream(
    start_gateway: StartGateway, fake_bedrock: FakeBedrock
) -> None:
    stub = await gateway(start_gateway, [fake_bedrock])
    fake_bedrock.fail(429, in_stream=True, after_chunks=3)
    received: list[str] = []

    async def read() -> None:
        async for chunk in stub.ChatStream(ask(), metadata=AUTH):
            received.append(chunk.delta)  # noqa: PERF401 - what came before the error

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "ThrottlingException" in (caught.value.details() or "")
    assert "".join(received) == "Hello! How"


async def test_a_client_cancel_closes_the_upstream(start_gateway: StartGateway, fake_bedrock: FakeBedrock) -> None:
    stub = await gateway(start_gateway, [fake_bedrock])
    gate = fake_bedrock.pause_after(2)
    call = stub.ChatStream(ask(), metadata=AUTH)
    first = await asyncio.wait_for(call.read(), 5)
    assert first.delta == "Hello!"
    call.cancel()
    await fake_bedrock.wait_disconnect(within=5)
    gate.set()
    assert fake_bedrock.completed == 0


@pytest.mark.parametrize(("allowed", "served"), [("eu-central-1", True), ("us-east-1", False)])
async def test_the_region_feeds_residency(
    start_gateway: StartGateway,
    fake_providers: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    allowed: str,
    served: bool,
) -> None:
    fake: FakeBedrock = await fake_providers.start("bedrock", region="eu-central-1")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # the provider's config names no region
    config = (
        f"providers:\n  - {{name: b0, type: bedrock, base_url: '{fake.url}'}}\n"
        "models:\n  - {name: claude, provider: b0, upstream_model: 'eu.anthropic.claude-3-5-haiku-20241022-v1:0'}\n"
        f"residency: {{regions: [{allowed}]}}\n"
    )
    _, channel = await start_gateway(config)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    if served:
        assert (await stub.Chat(ask(), metadata=AUTH)).message.content
        return
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask(), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "regions us-east-1" in (caught.value.details() or "")
    assert fake.requests == []


async def test_embed_with_titan_and_cohere(start_gateway: StartGateway, fake_bedrock: FakeBedrock) -> None:
    provider = f"{{name: b0, type: bedrock, region: {fake_bedrock.region}, base_url: '{fake_bedrock.url}'}}"
    config = (
        f"providers:\n  - {provider}\n"
        "models:\n"
        "  - {name: titan, provider: b0, upstream_model: 'amazon.titan-embed-text-v2:0', kind: embedding,"
        " dimensions: 1024, input_cost_per_mtok: 0.02}\n"
        "  - {name: cohere, provider: b0, upstream_model: cohere.embed-multilingual-v3, kind: embedding,"
        " dimensions: 8}\n"
    )
    _, channel = await start_gateway(config)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    texts = [f"text number {i}" for i in range(6)]
    titan = await stub.Embed(pb.EmbedRequest(model="titan", inputs=texts, dimensions=256), metadata=AUTH)
    # Titan takes one text a request: six signed invocations, the vectors back in the inputs' order.
    assert sorted(r.body["inputText"] for r in fake_bedrock.requests) == sorted(texts)
    assert [list(e.values) for e in titan.embeddings] == [fake_vector(t, 256) for t in texts]  # exact in float32
    assert (titan.model, titan.provider, titan.upstream_model) == ("titan", "b0", "amazon.titan-embed-text-v2:0")
    assert titan.usage.prompt_tokens == 18  # inputTextTokenCount, three a text
    assert titan.usage.cost_usd == pytest.approx(18 * 0.02 / 1e6)
    fake_bedrock.requests.clear()
    many = [f"t{i}" for i in range(150)]
    cohere = await stub.Embed(pb.EmbedRequest(model="cohere", inputs=many), metadata=AUTH)
    assert sorted(len(r.body["texts"]) for r in fake_bedrock.requests) == [54, 96]
    assert [list(e.values) for e in cohere.embeddings] == [fake_vector(t) for t in many]
    assert cohere.usage.prompt_tokens > 0  # Bedrock reports none for Cohere: counted by the gateway
