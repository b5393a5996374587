"""Provider quotas (rpm, tpm, calls in flight) kept by the Rust limiter: a target over its quota is skipped or waited
for instead of being called, and token takes are settled on the provider's usage."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim-a, type: simulated, simulation: {max_answer_tokens: 8}}
  - {name: sim-b, type: simulated, simulation: {max_answer_tokens: 8}}
  - {name: sim-slow, type: simulated, simulation: {time_to_first_token_ms: 300, max_answer_tokens: 4}}
models:
  - {name: capped, provider: sim-a, quota: {rpm: 2}}
  - {name: spare, provider: sim-b}
  - {name: tokens, provider: sim-a, quota: {tpm: 100}, tokenizer: o200k_base}
  - {name: single, provider: sim-slow, quota: {max_concurrent: 1}}
routes:
  - name: overflow
    strategy: fallback
    targets: [{model: capped}, {model: spare}]
  - name: one-at-a-time
    strategy: fallback
    targets: [{model: single}, {model: spare}]
  - name: capped-only
    strategy: fallback
    targets: [{model: capped}]
    queue: {max_size: 4, max_wait_ms: 500}
"""


def ask(model: str, text: str = "hi", **fields: object) -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[pb.Message(role="user", content=text)], **fields)  # type: ignore[arg-type]


@pytest.fixture
async def stub(start_gateway: StartGateway) -> gateway_pb2_grpc.GatewayStub:
    _, channel = await start_gateway(CONFIG)
    return gateway_pb2_grpc.GatewayStub(channel)


async def test_rpm_overflow_goes_to_the_next_target_without_calling_the_capped_one(
    stub: gateway_pb2_grpc.GatewayStub,
) -> None:
    served = [(await stub.Chat(ask("overflow"), metadata=AUTH)).model for _ in range(4)]
    assert served == ["capped", "capped", "spare", "spare"]
    third = await stub.Chat(ask("overflow"), metadata=AUTH)
    assert [a.model for a in third.route.attempts] == ["spare"], "the capped target was skipped, not tried"


async def test_quota_exhausted_route_answers_resource_exhausted_with_retry_info(
    stub: gateway_pb2_grpc.GatewayStub,
) -> None:
    for _ in range(2):
        await stub.Chat(ask("capped-only"), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask("capped-only"), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate-limited" in (caught.value.details() or "")


async def test_concurrency_quota_sends_the_second_call_elsewhere(stub: gateway_pb2_grpc.GatewayStub) -> None:
    first, second = await asyncio.gather(
        stub.Chat(ask("one-at-a-time", "a"), metadata=AUTH), stub.Chat(ask("one-at-a-time", "b"), metadata=AUTH)
    )
    assert sorted([first.model, second.model]) == ["single", "spare"]
    again = await stub.Chat(ask("one-at-a-time", "c"), metadata=AUTH)
    assert again.model == "single", "the slot was released when the call ended"


async def test_token_takes_are_settled_on_reported_usage(stub: gateway_pb2_grpc.GatewayStub) -> None:
    # Each call reserves its prompt plus max_tokens=60 (about 70 of the 100 tokens per minute); the simulated answer
    # uses far fewer, and settling gives the rest back, so a second call fits at once.
    first = await stub.Chat(ask("tokens", max_tokens=60), metadata=AUTH)
    assert first.usage.total_tokens < 30
    second = await stub.Chat(ask("tokens", max_tokens=60), metadata=AUTH)
    assert second.model == "tokens"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask("tokens", max_tokens=90), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
