"""The Gateway service end to end through generated stubs, against simulated providers."""

from __future__ import annotations

import asyncio
import re
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.server.fixtures import AUTH, StartGateway


def user(text: str) -> pb.Message:
    return pb.Message(role="user", content=text)


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "the error carries no google.rpc.Status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no ErrorInfo in the status details")


async def test_chat_answers_with_usage_and_cost(stub: gateway_pb2_grpc.GatewayStub) -> None:
    response = await stub.Chat(pb.ChatRequest(model="fast", messages=[user("Hello there")]), metadata=AUTH)
    assert response.id
    assert response.model == "fast"
    assert response.provider == "sim"
    assert response.simulated
    assert response.message.role == "assistant"
    assert response.message.content.startswith("[simulated fast]")
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.cost_usd == pytest.approx((usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6)


async def test_chat_is_deterministic_per_prompt(stub: gateway_pb2_grpc.GatewayStub) -> None:
    request = pb.ChatRequest(model="fast", messages=[user("same prompt")])
    first = await stub.Chat(request, metadata=AUTH)
    second = await stub.Chat(request, metadata=AUTH)
    other = await stub.Chat(pb.ChatRequest(model="fast", messages=[user("another prompt")]), metadata=AUTH)
    assert first.message.content == second.message.content
    assert first.id != second.id
    assert other.message.content != first.message.content


async def test_request_ids_are_unique_and_grow_with_time(stub: gateway_pb2_grpc.GatewayStub) -> None:
    request = pb.ChatRequest(model="fast", messages=[user("id me")])
    ids = [(await stub.Chat(request, metadata=AUTH)).id for _ in range(50)]
    ids += [r.id for r in await asyncio.gather(*(stub.Chat(request, metadata=AUTH) for _ in range(50)))]
    assert len(set(ids)) == 100
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in ids), ids
    # The first 12 digits are the millisecond: ids of later calls sort after earlier ones (the audit log's index).
    assert [i[:12] for i in ids[:50]] == sorted(i[:12] for i in ids[:50])
    assert int(ids[-1][:12], 16) / 1000 == pytest.approx(time.time(), abs=60)


async def test_stream_matches_unary_and_ends_with_usage(stub: gateway_pb2_grpc.GatewayStub) -> None:
    request = pb.ChatRequest(model="fast", messages=[user("stream please")])
    chunks = [chunk async for chunk in stub.ChatStream(request, metadata=AUTH)]
    unary = await stub.Chat(request, metadata=AUTH)
    assert len(chunks) > 2
    assert chunks[0].model == "fast"
    assert chunks[0].provider == "sim"
    assert chunks[0].simulated
    assert len({c.id for c in chunks}) == 1
    assert "".join(c.delta for c in chunks) == unary.message.content
    final = chunks[-1]
    assert final.finish_reason == "stop"
    assert final.HasField("usage")
    assert final.usage.completion_tokens == unary.usage.completion_tokens
    assert all(not c.HasField("usage") for c in chunks[:-1])


async def test_max_tokens_truncates_with_length(stub: gateway_pb2_grpc.GatewayStub) -> None:
    response = await stub.Chat(pb.ChatRequest(model="fast", messages=[user("hi")], max_tokens=6), metadata=AUTH)
    assert response.finish_reason == "length"
    assert response.usage.completion_tokens <= 6


async def test_forced_tool_call(stub: gateway_pb2_grpc.GatewayStub) -> None:
    tool = pb.Tool(name="get_weather", parameters_json='{"type": "object", "properties": {}}')
    request = pb.ChatRequest(model="fast", messages=[user("weather?")], tools=[tool], tool_choice="required")
    response = await stub.Chat(request, metadata=AUTH)
    assert response.finish_reason == "tool_calls"
    assert [c.name for c in response.message.tool_calls] == ["get_weather"]


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer wrong-key"),), (("authorization", "Basic abc"),), (("authorization", "Bearer"),)],
    ids=["missing", "wrong", "wrong-scheme", "empty"],
)
async def test_unauthenticated_calls_get_one_answer(
    stub: gateway_pb2_grpc.GatewayStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x")]), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.details() == (
        "missing or invalid gateway key: send metadata 'authorization: Bearer <gateway key>'"
    )
    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await stub.ListModels(pb.ListModelsRequest(), metadata=metadata)
    assert listing.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("request_", "reason", "fragment"),
    [
        (pb.ChatRequest(model="nope", messages=[user("x")]), "UNKNOWN_MODEL", "unknown model 'nope'"),
        (pb.ChatRequest(model="", messages=[user("x")]), "MODEL_REQUIRED", "model is required"),
        (pb.ChatRequest(model="fast"), "MESSAGES_REQUIRED", "messages is empty"),
        (pb.ChatRequest(model="fast", messages=[pb.Message(role="robot", content="x")]), "BAD_ROLE", "role 'robot'"),
        (pb.ChatRequest(model="fast", messages=[pb.Message(role="user")]), "EMPTY_MESSAGE", "messages[0] is empty"),
        (pb.ChatRequest(model="fast", messages=[user("x")], temperature=3), "INVALID_REQUEST", "temperature 3"),
        (pb.ChatRequest(model="fast", messages=[user("x")], top_p=0), "INVALID_REQUEST", "top_p 0"),
        (pb.ChatRequest(model="fast", messages=[user("x")], max_tokens=101), "MAX_TOKENS_TOO_LARGE", "limit of 100"),
        (pb.ChatRequest(model="fast", messages=[user("word " * 300)]), "CONTEXT_WINDOW_EXCEEDED", "context window"),
        (
            pb.ChatRequest(model="fast", messages=[user("x")], tools=[pb.Tool(name="t", parameters_json="[1]")]),
            "INVALID_REQUEST",
            "must be a JSON object",
        ),
        (
            pb.ChatRequest(model="fast", messages=[pb.Message(role="tool", content="42")]),
            "INVALID_REQUEST",
            "tool_call_id",
        ),
        (
            pb.ChatRequest(
                model="fast",
                messages=[
                    pb.Message(role="user", parts=[pb.ContentPart(image_url=pb.ImageUrl(url="https://x/a.png"))])
                ],
            ),
            "UNSUPPORTED_CAPABILITY",
            "does not accept images",
        ),
    ],
    ids=[
        "unknown-model",
        "no-model",
        "no-messages",
        "bad-role",
        "empty-message",
        "temperature",
        "top-p",
        "max-tokens",
        "context-window",
        "tool-schema",
        "tool-without-id",
        "images-unsupported",
    ],
)
async def test_bad_requests_are_invalid_argument(
    stub: gateway_pb2_grpc.GatewayStub, request_: pb.ChatRequest, reason: str, fragment: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await stub.Chat(request_, metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        _ = [chunk async for chunk in stub.ChatStream(request_, metadata=AUTH)]
    for caught in (unary, streamed):
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert fragment in (caught.value.details() or "")
        info = error_info(caught.value)
        assert info.reason == reason
        assert info.domain == "llmgateway.v1"


async def test_key_limited_to_models_is_denied_others(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMITED_TEST_KEY", "gw-limited")
    _, channel = await start_gateway()
    stub = gateway_pb2_grpc.GatewayStub(channel)
    limited = (("authorization", "Bearer gw-limited"),)
    assert (await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x")]), metadata=limited)).model == "fast"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(pb.ChatRequest(model="slow", messages=[user("x")]), metadata=limited)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(caught.value).reason == "MODEL_NOT_ALLOWED"
    listed = await stub.ListModels(pb.ListModelsRequest(), metadata=limited)
    assert [m.id for m in listed.models] == ["fast"]


async def test_provider_failure_is_unavailable_and_server_keeps_serving(stub: gateway_pb2_grpc.GatewayStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(pb.ChatRequest(model="broken", messages=[user("x")]), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(caught.value)
    assert info.reason == "SIMULATED_FAILURE"
    assert info.metadata["provider"] == "sim-broken"
    assert (await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x")]), metadata=AUTH)).message.content


async def test_deadline_is_honoured(stub: gateway_pb2_grpc.GatewayStub) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(pb.ChatRequest(model="slow", messages=[user("x")]), metadata=AUTH, timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert loop.time() - started < 1.0
    assert (await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x")]), metadata=AUTH)).message.content


async def test_count_tokens(stub: gateway_pb2_grpc.GatewayStub) -> None:
    text = await stub.CountTokens(pb.CountTokensRequest(model="fast", text="hello world"), metadata=AUTH)
    assert text.tokens == 2
    assert text.exact
    assert text.tokenizer == "o200k_base"
    chat = await stub.CountTokens(pb.CountTokensRequest(model="fast", messages=[user("hello world")]), metadata=AUTH)
    assert chat.tokens > text.tokens  # message overheads included
    response = await stub.Chat(pb.ChatRequest(model="fast", messages=[user("hello world")]), metadata=AUTH)
    assert response.usage.prompt_tokens == chat.tokens
    for bad in (
        pb.CountTokensRequest(model="fast"),
        pb.CountTokensRequest(model="fast", text="a", messages=[user("b")]),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CountTokens(bad, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_models(stub: gateway_pb2_grpc.GatewayStub) -> None:
    response = await stub.ListModels(pb.ListModelsRequest(), metadata=AUTH)
    fast = next(m for m in response.models if m.id == "fast")
    assert fast.provider == "sim"
    assert fast.provider_type == "simulated"
    assert fast.simulated
    assert fast.context_window == 200
    assert fast.max_output_tokens == 100
    assert fast.input_cost_per_mtok == 1.0
    assert list(fast.capabilities) == ["streaming", "tools"]
    assert {m.id for m in response.models} == {"fast", "slow", "broken"}


async def test_oversize_messages_are_refused_and_the_server_keeps_serving(start_gateway: StartGateway) -> None:
    _, channel = await start_gateway(
        "server: {max_message_bytes: 4096, max_input_chars: 1000}\n"
        "providers: [{name: sim, type: simulated}]\nmodels: [{name: fast, provider: sim}]\n"
    )
    stub = gateway_pb2_grpc.GatewayStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as too_big:
        await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x" * 10_000)]), metadata=AUTH)
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(grpc.aio.AioRpcError) as too_long:
        await stub.Chat(pb.ChatRequest(model="fast", messages=[user("x" * 2_000)]), metadata=AUTH)
    assert too_long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(too_long.value).reason == "INPUT_TOO_LARGE"
    assert (await stub.Chat(pb.ChatRequest(model="fast", messages=[user("hi")]), metadata=AUTH)).message.content
