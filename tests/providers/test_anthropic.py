"""AnthropicProvider against the fake Messages API."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from gateway.errors import ProviderError
from gateway.providers.anthropic import AnthropicProvider
from tests.fakes import FakeAnthropic
from tests.providers.contract import CALL, ProviderContract
from tests.providers.samples import (
    PNG,
    WEATHER,
    assemble,
    hello,
    json_request,
    scattered_system_and_repeated_roles,
    tool_round_trip,
    with_images,
)


class TestAnthropicContract(ProviderContract):
    adapter = AnthropicProvider
    overloaded_status = 529
    frames_before_text = 3  # message_start, content_block_start, ping

    @pytest.fixture
    def fake(self, fake_anthropic: FakeAnthropic) -> FakeAnthropic:
        return fake_anthropic


@pytest.fixture
async def anthropic(fake_anthropic: FakeAnthropic) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(fake_anthropic.provider_config())
    yield provider
    await provider.aclose()


async def test_request_shape(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    request = hello(temperature=0.3, top_p=0.8, stop=["END"], seed=1, user="u-1")
    await anthropic.chat(request, fake_anthropic.model_config(max_output_tokens=321), CALL)
    sent = fake_anthropic.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == fake_anthropic.api_key
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 321,  # required: the model's max_output_tokens when the request sets none
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
        "temperature": 0.3,
        "top_p": 0.8,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
    }


async def test_configured_api_version_header(fake_anthropic: FakeAnthropic) -> None:
    provider = AnthropicProvider(fake_anthropic.provider_config(api_version="2024-01-01"))
    try:
        await provider.chat(hello(max_tokens=5), fake_anthropic.model_config(), CALL)
    finally:
        await provider.aclose()
    assert fake_anthropic.requests[0].headers["anthropic-version"] == "2024-01-01"
    assert fake_anthropic.requests[0].body["max_tokens"] == 5


async def test_system_messages_hoisted_and_same_roles_merged(
    fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider
) -> None:
    request = scattered_system_and_repeated_roles()
    await anthropic.chat(request, fake_anthropic.model_config(), CALL)
    body = fake_anthropic.requests[0].body
    assert body["system"] == "Rule one.\n\nRule two."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["First.", "Second."]


async def test_images_as_base64_and_url_sources(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    await anthropic.chat(with_images(), fake_anthropic.model_config(), CALL)
    blocks = fake_anthropic.requests[0].body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
    assert blocks[3] == {"type": "text", "text": "Answer in one word."}


async def test_tool_round_trip(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    await anthropic.chat(tool_round_trip(), fake_anthropic.model_config(), CALL)
    body = fake_anthropic.requests[0].body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp_c": 21}'}],
    }
    assert body["tools"] == [
        {"name": "get_weather", "description": WEATHER.description, "input_schema": WEATHER.parameters}
    ]
    assert "tool_choice" not in body  # "auto" is Anthropic's default


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ("get_weather", {"type": "tool", "name": "get_weather"}),
    ],
)
async def test_tool_choice(
    fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider, choice: str, wire: dict[str, str]
) -> None:
    await anthropic.chat(hello(tools=[WEATHER], tool_choice=choice), fake_anthropic.model_config(), CALL)
    assert fake_anthropic.requests[0].body["tool_choice"] == wire


async def test_tool_use_answer(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    fake_anthropic.reply("Let me check.", tool_calls=[("get_weather", {"city": "Paris"})])
    result = await anthropic.chat(hello(tools=[WEATHER]), fake_anthropic.model_config(), CALL)
    assert result.finish_reason == "tool_calls"
    assert result.text == "Let me check."
    assert [(c.id, c.name, json.loads(c.arguments_json)) for c in result.tool_calls] == [
        ("toolu_0fake", "get_weather", {"city": "Paris"})
    ]


async def test_streamed_tool_use(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    fake_anthropic.reply(
        "Checking.", tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})]
    )
    out = await assemble(anthropic.stream(hello(tools=[WEATHER]), fake_anthropic.model_config(), CALL))
    assert out.text == "Checking."
    assert out.finish_reason == "tool_calls"
    assert [(c["id"], json.loads(c["arguments"])) for c in out.tool_calls.values()] == [
        ("toolu_0fake", {"city": "Paris"}),
        ("toolu_1fake", {"city": "Oslo"}),
    ]


@pytest.mark.parametrize(
    ("stop_reason", "finish"), [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")]
)
async def test_stop_reasons(
    fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider, stop_reason: str, finish: str
) -> None:
    fake_anthropic.reply("Cut", finish=stop_reason, times=2)
    assert (await anthropic.chat(hello(), fake_anthropic.model_config(), CALL)).finish_reason == finish
    assert (await assemble(anthropic.stream(hello(), fake_anthropic.model_config(), CALL))).finish_reason == finish


async def test_prompt_tokens_include_cache_reads_and_writes(
    fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider
) -> None:
    fake_anthropic.reply("x", prompt_tokens=1000, cached_tokens=600, cache_creation_tokens=300, times=2)
    result = await anthropic.chat(hello(), fake_anthropic.model_config(), CALL)
    streamed = await assemble(anthropic.stream(hello(), fake_anthropic.model_config(), CALL))
    for usage in (result.usage, streamed.usage):
        assert usage is not None
        assert (usage.prompt_tokens, usage.cached_prompt_tokens) == (1000, 600)
    assert fake_anthropic.requests[0].body  # the fake reported input_tokens=100 apart from the cached ones


@pytest.mark.parametrize("schema", [True, False])
async def test_response_format_asks_for_json_in_the_system_prompt(
    fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider, schema: bool
) -> None:
    await anthropic.chat(json_request(schema), fake_anthropic.model_config(), CALL)
    system = fake_anthropic.requests[0].body["system"]
    assert "JSON" in system
    assert ('"properties"' in system) is schema


async def test_overloaded_error_event_mid_stream(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    fake_anthropic.fail(529, in_stream=True, after_chunks=4)
    with pytest.raises(ProviderError) as caught:
        await assemble(anthropic.stream(hello(), fake_anthropic.model_config(), CALL))
    assert caught.value.reason == "UPSTREAM_UNAVAILABLE"
    assert "overloaded_error" in caught.value.message
    assert caught.value.http_status == 529


async def test_spend_limit_429_is_not_retryable(fake_anthropic: FakeAnthropic, anthropic: AnthropicProvider) -> None:
    fake_anthropic.fail(
        429,
        body=b'{"type":"error","error":{"type":"rate_limit_error","message":"spend limit",'
        b'"details":{"error_code":"enforced_spend_limit_reached"}}}',
    )
    with pytest.raises(ProviderError) as caught:
        await anthropic.chat(hello(), fake_anthropic.model_config(), CALL)
    assert caught.value.reason == "UPSTREAM_RATE_LIMITED"
    assert caught.value.retryable is False
