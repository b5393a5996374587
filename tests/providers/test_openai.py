"""OpenAIProvider against the fake Chat Completions API."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
from collections.abc import AsyncIterator

import pytest

from gateway.chat import ChatRequest, ImagePart, Message, ResponseFormat
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.base import UpstreamCall
from gateway.providers.openai import OpenAIProvider
from tests.fakes import FakeOpenAI
from tests.providers.contract import CALL, ProviderContract
from tests.providers.samples import PNG, WEATHER, assemble, hello, json_request, tool_round_trip, with_images


class TestOpenAIContract(ProviderContract):
    adapter = OpenAIProvider

    @pytest.fixture
    def fake(self, fake_openai: FakeOpenAI) -> FakeOpenAI:
        return fake_openai


@pytest.fixture
async def openai(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(fake_openai.provider_config())
    yield provider
    await provider.aclose()


async def test_request_shape(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    request = hello(max_tokens=64, temperature=0.2, top_p=0.9, stop=["END"], seed=7, user="u-1")
    await openai.chat(
        request, fake_openai.model_config(), UpstreamCall(request_id="r", headers={"traceparent": "00-x"})
    )
    sent = fake_openai.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {fake_openai.api_key}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["traceparent"] == "00-x"
    assert sent.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "user": "u-1",
    }


async def test_o_series_models_get_max_completion_tokens(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    result = await openai.chat(hello(max_tokens=100), fake_openai.model_config(upstream_model="o3-mini"), CALL)
    assert result.upstream_model == "o3-mini"
    assert fake_openai.requests[0].body["max_completion_tokens"] == 100


async def test_images_as_content_parts(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    await openai.chat(with_images(), fake_openai.model_config(), CALL)
    parts = fake_openai.requests[0].body["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "What is in these images?"}
    assert parts[1]["type"] == "image_url"
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
    assert parts[3] == {"type": "text", "text": "Answer in one word."}


async def test_tool_call_answer(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.reply("", tool_calls=[("get_weather", {"city": "Paris"})])
    request = hello(tools=[WEATHER], tool_choice="get_weather")
    result = await openai.chat(request, fake_openai.model_config(), CALL)
    assert result.finish_reason == "tool_calls"
    assert result.text == ""
    assert [(c.name, json.loads(c.arguments_json)) for c in result.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert result.tool_calls[0].id
    body = fake_openai.requests[0].body
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": WEATHER.description, "parameters": WEATHER.parameters},
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


async def test_tool_round_trip_messages(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    result = await openai.chat(tool_round_trip(), fake_openai.model_config(), CALL)
    assert result.text
    messages = fake_openai.requests[0].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'}


async def test_streamed_tool_call_fragments(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.reply("", tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})])
    out = await assemble(openai.stream(hello(tools=[WEATHER]), fake_openai.model_config(), CALL))
    assert out.finish_reason == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in out.tool_calls.values()] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    assert all(c["id"] for c in out.tool_calls.values())


@pytest.mark.parametrize("schema", [True, False])
async def test_response_format(fake_openai: FakeOpenAI, openai: OpenAIProvider, schema: bool) -> None:
    await openai.chat(json_request(schema), fake_openai.model_config(), CALL)
    fmt = fake_openai.requests[0].body["response_format"]
    if schema:
        assert fmt == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {}}},
        }
    else:
        assert fmt == {"type": "json_object"}


async def test_json_object_without_json_in_prompt_is_rejected_with_openais_words(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    request = hello(response_format=ResponseFormat(kind="json_object"))
    with pytest.raises(ProviderError) as caught:
        await openai.chat(request, fake_openai.model_config(), CALL)
    assert caught.value.kind == ErrorKind.INVALID_ARGUMENT
    assert "must contain the word 'json'" in caught.value.message


async def test_retry_after_as_http_date(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.fail(429, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    with pytest.raises(ProviderError) as caught:
        await openai.chat(hello(), fake_openai.model_config(), CALL)
    assert caught.value.retry_after == pytest.approx(30, abs=2)


async def test_retry_after_from_rate_limit_reset_headers(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    fake_openai.fail(429)  # no Retry-After: the exhausted limit (requests, "20s") says when
    with pytest.raises(ProviderError) as caught:
        await openai.chat(hello(), fake_openai.model_config(), CALL)
    assert caught.value.retry_after == pytest.approx(20)


async def test_stream_sends_stream_options(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    await assemble(openai.stream(hello(), fake_openai.model_config(), CALL))
    body = fake_openai.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_large_image_body(fake_openai: FakeOpenAI, openai: OpenAIProvider) -> None:
    """Bodies over 1 MiB (inline images) go out without aiohttp's large-body warning (an error under pytest)."""
    big = PNG + bytes(3 * 1024 * 1024)
    request = ChatRequest(
        model="m", messages=[Message(role="user", parts=(ImagePart(data=big, mime_type="image/png"),))]
    )
    await openai.chat(request, fake_openai.model_config(), CALL)
    url = fake_openai.requests[0].body["messages"][0]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == big


async def test_stream_ends_at_done_even_if_the_server_keeps_the_body_open(
    fake_openai: FakeOpenAI, openai: OpenAIProvider
) -> None:
    gate = fake_openai.pause_after(-1)
    started = time.perf_counter()
    out = await asyncio.wait_for(assemble(openai.stream(hello(), fake_openai.model_config(), CALL)), 3)
    assert time.perf_counter() - started < 2
    assert out.finish_reason == "stop"
    await fake_openai.wait_disconnect()  # the connection was closed, not returned to the pool half-read
    gate.set()
