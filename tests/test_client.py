"""gateway.client: the typed async client over the generated stubs, against a running gateway."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb

from gateway.client import GatewayClient, SyncGatewayClient
from tests.server.fixtures import TEST_KEY, StartGateway


async def test_async_client_round_trip(start_gateway: StartGateway) -> None:
    gateway, _ = await start_gateway()
    async with GatewayClient(f"127.0.0.1:{gateway.port}", TEST_KEY) as client:
        models = await client.list_models()
        assert "fast" in {m.id for m in models}
        answer = await client.chat("fast", "hello", max_tokens=20, metadata={"app": "test"})
        assert answer.message.content.startswith("[simulated fast]")
        chunks = [chunk async for chunk in client.chat_stream("fast", [("system", "be brief"), ("user", "hello")])]
        assert chunks[-1].usage.completion_tokens > 0
        assert (await client.count_tokens("fast", text="hello world")).tokens == 2
        assert (await client.count_tokens("fast", messages="hello world")).tokens > 2


async def test_async_client_surfaces_status_codes(start_gateway: StartGateway) -> None:
    gateway, _ = await start_gateway()
    async with GatewayClient(f"127.0.0.1:{gateway.port}", "gw-wrong") as client:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.chat("fast", "hello")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_blocking_client_sends_what_the_async_one_sends(start_gateway: StartGateway) -> None:
    """Both clients build their requests and metadata in one place: the same count, and each one's deferred call
    fetched by the id it gave, through the other client."""
    gateway, _ = await start_gateway()
    address = f"127.0.0.1:{gateway.port}"
    messages = [("system", "be brief"), ("user", "hello world")]

    def blocking() -> tuple[int, pb.GetDeferredResponse]:
        with SyncGatewayClient(address, TEST_KEY) as client:
            tokens = client.count_tokens("fast", messages=messages).tokens
            client.chat("fast", "hello", defer_up_to_s=0.01, deferred_id="blocking-call")
            return tokens, client.get_deferred("async-call")

    async with GatewayClient(address, TEST_KEY) as client:
        counted = (await client.count_tokens("fast", messages=messages)).tokens
        await client.chat("fast", "hello", defer_up_to_s=0.01, deferred_id="async-call")
        blocking_counted, theirs = await asyncio.to_thread(blocking)
        mine = await client.get_deferred("blocking-call")
    assert blocking_counted == counted > 4
    assert (theirs.request_id, mine.request_id) == ("async-call", "blocking-call")
    assert theirs.state == mine.state == pb.DEFERRED_STATE_DONE
