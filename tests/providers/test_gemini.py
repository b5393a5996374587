"""GeminiProvider against the fake Gemini API (generateContent, streamGenerateContent?alt=sse)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from gateway.chat import ChatRequest, Message, ToolCall
from gateway.errors import ProviderError
from gateway.providers.gemini import GeminiProvider
from tests.fakes import FakeGemini
from tests.providers.contract import CALL, ProviderContract
from tests.providers.samples import PNG, WEATHER, assemble, hello, json_request, tool_round_trip, with_images


class TestGeminiContract(ProviderContract):
    adapter = GeminiProvider
    frames_before_text = 0

    @pytest.fixture
    def fake(self, fake_gemini: FakeGemini) -> FakeGemini:
        return fake_gemini


@pytest.fixture
async def gemini(fake_gemini: FakeGemini) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(fake_gemini.provider_config())
    yield provider
    await provider.aclose()


async def test_request_shape(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    request = hello(max_tokens=64, temperature=0.2, top_p=0.9, stop=["END"], seed=7)
    await gemini.chat(request, fake_gemini.model_config(), CALL)
    await assemble(gemini.stream(request, fake_gemini.model_config(), CALL))
    plain, streamed = fake_gemini.requests
    assert plain.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert streamed.path == "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert streamed.query == {"alt": "sse"}
    assert plain.headers["x-goog-api-key"] == fake_gemini.api_key
    assert plain.body == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 64,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
            "seed": 7,
        },
    }
    assert streamed.body == plain.body


async def test_models_prefix_is_accepted(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    await gemini.chat(hello(), fake_gemini.model_config(upstream_model="models/gemini-2.5-pro"), CALL)
    assert fake_gemini.requests[0].path == "/v1beta/models/gemini-2.5-pro:generateContent"


async def test_images_inline_and_by_uri(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    await gemini.chat(with_images(), fake_gemini.model_config(), CALL)
    parts = fake_gemini.requests[0].body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}
    assert parts[2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}
    assert parts[3] == {"text": "Answer in one word."}


async def test_tool_round_trip(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    await gemini.chat(tool_round_trip(), fake_gemini.model_config(), CALL)
    body = fake_gemini.requests[0].body
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": WEATHER.description, "parametersJsonSchema": WEATHER.parameters}
            ]
        }
    ]
    assert "toolConfig" not in body


async def test_plain_text_tool_result_is_wrapped_in_an_object(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="Weather?"),
            Message(role="assistant", tool_calls=(ToolCall(id="c9", name="get_weather", arguments_json="{}"),)),
            Message(role="tool", tool_call_id="c9", content="sunny"),
        ],
    )
    await gemini.chat(request, fake_gemini.model_config(), CALL)
    response = fake_gemini.requests[0].body["contents"][2]["parts"][0]["functionResponse"]
    assert response == {"name": "get_weather", "response": {"result": "sunny"}}


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        ("get_weather", {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
    ],
)
async def test_tool_choice(
    fake_gemini: FakeGemini, gemini: GeminiProvider, choice: str, config: dict[str, object]
) -> None:
    await gemini.chat(hello(tools=[WEATHER], tool_choice=choice), fake_gemini.model_config(), CALL)
    assert fake_gemini.requests[0].body["toolConfig"] == {"functionCallingConfig": config}


async def test_function_call_answer(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    fake_gemini.reply("", tool_calls=[("get_weather", {"city": "Paris"})], times=2)
    result = await gemini.chat(hello(tools=[WEATHER]), fake_gemini.model_config(), CALL)
    assert result.finish_reason == "tool_calls"
    assert [(c.id, c.name, json.loads(c.arguments_json)) for c in result.tool_calls] == [
        ("call_0", "get_weather", {"city": "Paris"})
    ]
    out = await assemble(gemini.stream(hello(tools=[WEATHER]), fake_gemini.model_config(), CALL))
    assert out.finish_reason == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in out.tool_calls.values()] == [
        ("get_weather", {"city": "Paris"})
    ]


@pytest.mark.parametrize("schema", [True, False])
async def test_response_format(fake_gemini: FakeGemini, gemini: GeminiProvider, schema: bool) -> None:
    await gemini.chat(json_request(schema), fake_gemini.model_config(), CALL)
    config = fake_gemini.requests[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert ("responseJsonSchema" in config) is schema


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "error")],
)
async def test_finish_reasons(fake_gemini: FakeGemini, gemini: GeminiProvider, reason: str, finish: str) -> None:
    fake_gemini.reply("Cut", finish=reason, times=2)
    assert (await gemini.chat(hello(), fake_gemini.model_config(), CALL)).finish_reason == finish
    assert (await assemble(gemini.stream(hello(), fake_gemini.model_config(), CALL))).finish_reason == finish


async def test_thoughts_count_as_output(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    fake_gemini.reply("Done.", prompt_tokens=50, completion_tokens=5, thoughts_tokens=40)
    result = await gemini.chat(hello(), fake_gemini.model_config(), CALL)
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (50, 45)
    assert result.upstream_id == "resp1fake"
    assert result.upstream_model == "gemini-2.0-flash"


async def test_rate_limit_retry_delay_from_retry_info(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    fake_gemini.fail(429)  # the real body's RetryInfo says 27s
    with pytest.raises(ProviderError) as caught:
        await gemini.chat(hello(), fake_gemini.model_config(), CALL)
    assert caught.value.reason == "UPSTREAM_RATE_LIMITED"
    assert caught.value.retry_after == pytest.approx(27)


async def test_blocked_prompt(fake_gemini: FakeGemini, gemini: GeminiProvider) -> None:
    fake_gemini.fail(200, body=b'{"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.0-flash"}')
    result = await gemini.chat(hello(), fake_gemini.model_config(), CALL)
    assert (result.text, result.finish_reason) == ("", "content_filter")
