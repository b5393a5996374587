"""The Redis backend with a real redis-server: two gateway processes serve each other's entries, and a Redis that
goes away costs the cache, never a call (the gateway says so in its log and metrics, and uses Redis again once it is
back)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2_grpc

from tests.admin.helpers import chat_request
from tests.fakes.fixtures import FakeProviders
from tests.fakes.proxy import StallingProxy
from tests.fakes.server import Answer
from tests.observe.test_gateway_observability import scrape, value
from tests.server.fixtures import AUTH, TEST_KEY, StartGateway
from tests.server.process import Server, clean_environment, free_port
from tests.store.redis import RedisServer, start_redis


def config(
    base_url: str, key_env: str, redis_url: str, *, retry_after_s: float = 5.0, redis_timeout_s: float = 0.25
) -> str:
    return f"""
cache:
  backend: redis
  redis_url: {redis_url}
  retry_after_s: {retry_after_s}
  redis_timeout_s: {redis_timeout_s}
providers:
  - {{name: openai, type: openai, base_url: '{base_url}', api_key_env: {key_env}}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    cache: {{exact: true, ttl_s: 600}}
"""


async def test_two_gateway_processes_share_exact_hits_through_redis(
    tmp_path: Path, fake_providers: FakeProviders, redis_server: RedisServer
) -> None:
    fake = await fake_providers.start("openai")
    fake.default_answer = Answer(text="Shared answer.", prompt_tokens=20, completion_tokens=3)
    path = tmp_path / "gateway.yaml"
    path.write_text(config(fake.url, fake.key_env, redis_server.url))
    env = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": TEST_KEY, fake.key_env: fake.api_key or ""}
    servers = [Server(tmp_path / name, env, "--config", str(path)) for name in ("one", "two")]
    try:
        responses = []
        for server in servers:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = gateway_pb2_grpc.GatewayStub(channel)
                responses.append(await stub.Chat(chat_request("gpt", "Shared question"), metadata=AUTH))
        first, second = responses
        assert not first.cache.hit
        assert second.cache.hit
        assert second.cache.entry_id
        assert second.message.content == "Shared answer."
        assert len(fake.requests) == 1
        client = redis_server.client()
        assert len(client.keys("llmgw:cache:e:*")) == 1
        # Purged through one gateway, gone for the other.
        async with grpc.aio.insecure_channel(servers[1].address) as channel:
            purged = await admin_pb2_grpc.AdminStub(channel).PurgeCache(apb.PurgeCacheRequest(), metadata=AUTH)
            assert purged.purged == 1
        async with grpc.aio.insecure_channel(servers[0].address) as channel:
            again = await gateway_pb2_grpc.GatewayStub(channel).Chat(
                chat_request("gpt", "Shared question"), metadata=AUTH
            )
        assert not again.cache.hit
        assert len(fake.requests) == 2
    finally:
        for server in servers:
            server.stop()


async def test_redis_down_serves_without_the_cache_and_says_so(
    start_gateway: StartGateway, fake_providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    fake = await fake_providers.start("openai")
    port = free_port()
    redis_process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        gateway, channel = await start_gateway(config(fake.url, fake.key_env, url, retry_after_s=0.2))
        stub = gateway_pb2_grpc.GatewayStub(channel)
        request = chat_request("gpt", "Will Redis hold?")
        await stub.Chat(request, metadata=AUTH)
        assert (await stub.Chat(request, metadata=AUTH)).cache.hit
        redis_process.terminate()
        redis_process.wait(timeout=10)
        with caplog.at_level(logging.WARNING, logger="gateway.cache.service"):
            for _ in range(3):
                response = await stub.Chat(request, metadata=AUTH)
                assert not response.cache.hit
                assert response.message.content
        assert any("unavailable" in r.getMessage() and "without the cache" in r.getMessage() for r in caplog.records)
        samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
        assert value(samples, "llm_gateway_cache_backend_up", backend="redis") == 0
        assert value(samples, "llm_gateway_cache_backend_errors_total", backend="redis") >= 1
        admin = admin_pb2_grpc.AdminStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        # Back on the same port: after retry_after_s the cache is used again (the new server starts empty).
        redis_process = start_redis(port)
        await _wait_until_cached(stub, request)
        samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
        assert value(samples, "llm_gateway_cache_backend_up", backend="redis") == 1
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)


@pytest.mark.parametrize("fault", ["hangs", "answers slower than redis_timeout_s"])
async def test_a_hung_or_slow_redis_never_fails_a_call(
    start_gateway: StartGateway,
    fake_providers: FakeProviders,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    """Redis stays up and keeps the connections open, but stops answering (or answers late): every call is still
    served, within a deadline far below anything Redis would release it by, and the gateway says the cache is down."""
    fake = await fake_providers.start("openai")
    async with StallingProxy("127.0.0.1", redis_server.port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        gateway, channel = await start_gateway(
            config(fake.url, fake.key_env, url, retry_after_s=0.2, redis_timeout_s=0.2)
        )
        stub = gateway_pb2_grpc.GatewayStub(channel)
        request = chat_request("gpt", "Will Redis answer?")
        await stub.Chat(request, metadata=AUTH)
        assert (await stub.Chat(request, metadata=AUTH)).cache.hit
        if fault == "hangs":
            proxy.stall()
        else:
            proxy.delay = 1.0
        with caplog.at_level(logging.WARNING, logger="gateway.cache.service"):
            for _ in range(4):
                response = await stub.Chat(request, metadata=AUTH, timeout=10)
                assert not response.cache.hit
                assert response.message.content
                await asyncio.sleep(0.1)  # past retry_after_s now and then: Redis is tried again, and fails again
        assert proxy.held, "no Redis command went through the fault"
        assert any("without the cache" in r.getMessage() for r in caplog.records)
        samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
        assert value(samples, "llm_gateway_cache_backend_up", backend="redis") == 0
        assert value(samples, "llm_gateway_cache_backend_errors_total", backend="redis") >= 2
        proxy.delay = 0.0
        proxy.resume()
        await _wait_until_cached(stub, request)


async def _wait_until_cached(stub: gateway_pb2_grpc.GatewayStub, request: object) -> None:
    for _ in range(50):
        if (await stub.Chat(request, metadata=AUTH)).cache.hit:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cache was not used again after Redis came back")
