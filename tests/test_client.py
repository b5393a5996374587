"""gateway.client: the typed async client over the generated stubs, against a running gateway."""

from __future__ import annotations

import grpc
import pytest

from gateway.client import GatewayClient
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
