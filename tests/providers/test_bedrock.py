"""BedrockProvider against the fake Converse API: signed requests, event-stream answers, AWS errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gateway.chat import ChatRequest, ImagePart, Message
from gateway.config.schema import ProviderConfig
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.bedrock import BedrockProvider
from gateway.providers.registry import build_provider
from tests.fakes import FakeBedrock, FakeProvider
from tests.fakes.fixtures import FakeProviders
from tests.providers.contract import CALL, ProviderContract
from tests.providers.contract import _collect_until_error as collect_until_error
from tests.providers.samples import (
    PNG,
    WEATHER,
    assemble,
    hello,
    json_request,
    scattered_system_and_repeated_roles,
    tool_round_trip,
)

INFERENCE_PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
TOKEN = "IQoJb3JpZ2luX2VjEFAKE//////////wEaCXVzLWVhc3QtMSJHMEUCIQDfakeSessionToken0123456789+abc/def=="


class TestBedrockContract(ProviderContract):
    adapter = BedrockProvider
    frames_before_text = 1  # messageStart

    @pytest.fixture
    def fake(self, fake_bedrock: FakeBedrock) -> FakeBedrock:
        return fake_bedrock

    async def test_wrong_key_is_an_auth_failure_without_the_key(
        self, fake: FakeProvider, model: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wrong = "wRoNg/SecretKey+9999999999999999999999999"
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
        provider = BedrockProvider(fake.provider_config())
        try:
            with pytest.raises(ProviderError) as caught:
                await provider.chat(hello(), fake.model_config(), CALL)
        finally:
            await provider.aclose()
        error = caught.value
        assert (error.kind, error.reason, error.retryable) == (
            ErrorKind.FAILED_PRECONDITION,
            "PROVIDER_AUTH_FAILED",
            False,
        )
        assert "InvalidSignatureException" in error.message
        assert wrong not in error.message
        assert "9999" not in error.message

    async def test_missing_key_fails_before_sending(
        self, fake: FakeProvider, model: object, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        provider = BedrockProvider(fake.provider_config())
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), fake.model_config(), CALL)
        assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
            ErrorKind.FAILED_PRECONDITION,
            "PROVIDER_AUTH_FAILED",
            False,
        )
        assert "no AWS credentials found" in caught.value.message
        assert fake.requests == []


async def test_request_shape(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    request = hello(max_tokens=50, temperature=0.3, top_p=0.8, stop=["END"], seed=1, user="u-1")
    result = await bedrock.chat(request, fake_bedrock.model_config(), CALL)
    sent = fake_bedrock.requests[0]
    assert sent.path == "/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEBEDROCK00001/")
    assert "/us-east-1/bedrock/aws4_request" in sent.headers["authorization"]
    assert "x-amz-security-token" not in sent.headers
    assert sent.headers["accept"] == "application/json"
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "Say hello"}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.3, "topP": 0.8, "stopSequences": ["END"]},
    }
    assert result.upstream_id.startswith("0b9f4d2c-")  # x-amzn-RequestId
    assert result.upstream_model == "anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.mark.parametrize(
    "model_id",
    [
        INFERENCE_PROFILE,
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6",
        "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdef123456",
    ],
)
async def test_model_ids_are_percent_encoded_in_the_signed_path(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider, model_id: str
) -> None:
    model = fake_bedrock.model_config(upstream_model=model_id)
    await bedrock.chat(hello(), model, CALL)
    await assemble(bedrock.stream(hello(), model, CALL))
    assert [fake_bedrock.requested_model(r) for r in fake_bedrock.requests] == [model_id, model_id]
    encoded = model_id.replace(":", "%3A").replace("/", "%2F")
    assert fake_bedrock.raw_paths == [f"/model/{encoded}/converse", f"/model/{encoded}/converse-stream"]
    assert fake_bedrock.completed == 2  # both signatures, over the encoded paths, were accepted


async def test_temporary_credentials_sign_their_session_token(fake_providers: FakeProviders) -> None:
    fake: FakeBedrock = await fake_providers.start("bedrock", session_token=TOKEN)
    provider = BedrockProvider(fake.provider_config())
    try:
        await provider.chat(hello(), fake.model_config(), CALL)
    finally:
        await provider.aclose()
    sent = fake.requests[0].headers
    assert sent["x-amz-security-token"] == TOKEN
    assert "x-amz-security-token" in sent["authorization"].split("SignedHeaders=")[1].split(",")[0]


async def test_region_and_endpoint_come_from_the_environment(
    fake_bedrock: FakeBedrock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    provider = build_provider(ProviderConfig(name="b", type="bedrock"), tmp_path)  # type: ignore[arg-type]
    assert provider.config.region == "eu-central-1"  # what residency reads
    assert provider.config.url == "https://bedrock-runtime.eu-central-1.amazonaws.com"
    fake_bedrock.region = "eu-central-1"
    provider = BedrockProvider(fake_bedrock.provider_config(region=None))
    try:
        await provider.chat(hello(), fake_bedrock.model_config(), CALL)
    finally:
        await provider.aclose()
    assert "/eu-central-1/bedrock/aws4_request" in fake_bedrock.requests[0].headers["authorization"]


async def test_no_region_fails_before_sending(fake_bedrock: FakeBedrock) -> None:
    provider = BedrockProvider(fake_bedrock.provider_config(region=None))
    with pytest.raises(ProviderError) as caught:
        await provider.chat(hello(), fake_bedrock.model_config(), CALL)
    assert (caught.value.kind, caught.value.retryable) == (ErrorKind.FAILED_PRECONDITION, False)
    assert "AWS_REGION" in caught.value.message
    assert fake_bedrock.requests == []


async def test_system_messages_hoisted_and_same_roles_merged(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    request = scattered_system_and_repeated_roles()
    await bedrock.chat(request, fake_bedrock.model_config(), CALL)
    body = fake_bedrock.requests[0].body
    assert body["system"] == [{"text": "Rule one."}, {"text": "Rule two."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [{"text": "First."}, {"text": "Second."}]


async def test_images_as_bytes_and_s3_locations(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content="What is in these images?",
                parts=(
                    ImagePart(data=PNG, mime_type="image/png"),
                    ImagePart(url="data:image/jpeg;base64," + base64.b64encode(PNG).decode()),
                    ImagePart(url="s3://my-bucket/cats/cat.webp"),
                    "Answer in one word.",
                ),
            )
        ],
    )
    await bedrock.chat(request, fake_bedrock.model_config(), CALL)
    blocks = fake_bedrock.requests[0].body["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}}
    assert blocks[2]["image"]["format"] == "jpeg"
    assert blocks[3] == {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://my-bucket/cats/cat.webp"}}}}
    assert blocks[4] == {"text": "Answer in one word."}


async def test_an_http_image_url_is_refused_before_sending(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    request = ChatRequest(
        model="m", messages=[Message(role="user", content="Look", parts=(ImagePart(url="https://x.test/a.png"),))]
    )
    with pytest.raises(ProviderError) as caught:
        await bedrock.chat(request, fake_bedrock.model_config(), CALL)
    assert (caught.value.kind, caught.value.retryable) == (ErrorKind.FAILED_PRECONDITION, False)
    assert "x.test" not in caught.value.message  # part of the prompt
    assert fake_bedrock.requests == []


async def test_tool_round_trip(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    await bedrock.chat(tool_round_trip(), fake_bedrock.model_config(), CALL)
    body = fake_bedrock.requests[0].body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}}],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "call_1", "content": [{"text": '{"temp_c": 21}'}]}}],
    }
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": WEATHER.description,
                    "inputSchema": {"json": WEATHER.parameters},
                }
            }
        ]
    }


@pytest.mark.parametrize(
    ("choice", "wire"),
    [("required", {"any": {}}), ("get_weather", {"tool": {"name": "get_weather"}}), ("auto", None)],
)
async def test_tool_choice(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider, choice: str, wire: dict[str, object] | None
) -> None:
    await bedrock.chat(hello(tools=[WEATHER], tool_choice=choice), fake_bedrock.model_config(), CALL)
    assert fake_bedrock.requests[0].body["toolConfig"].get("toolChoice") == wire


async def test_tool_choice_none_leaves_the_tools_out_unless_the_conversation_used_them(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    await bedrock.chat(hello(tools=[WEATHER], tool_choice="none"), fake_bedrock.model_config(), CALL)
    assert "toolConfig" not in fake_bedrock.requests[0].body
    round_trip = tool_round_trip()
    round_trip.tool_choice = "none"
    await bedrock.chat(round_trip, fake_bedrock.model_config(), CALL)
    assert "toolChoice" not in fake_bedrock.requests[1].body["toolConfig"]


async def test_tool_use_answer(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    fake_bedrock.reply("Let me check.", tool_calls=[("get_weather", {"city": "Paris"})])
    result = await bedrock.chat(hello(tools=[WEATHER]), fake_bedrock.model_config(), CALL)
    assert result.finish_reason == "tool_calls"
    assert result.text == "Let me check."
    assert [(c.id, c.name, json.loads(c.arguments_json)) for c in result.tool_calls] == [
        ("tooluse_0fakeQx7", "get_weather", {"city": "Paris"})
    ]


async def test_streamed_tool_use(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    fake_bedrock.reply("Checking.", tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})])
    out = await assemble(bedrock.stream(hello(tools=[WEATHER]), fake_bedrock.model_config(), CALL))
    assert out.text == "Checking."
    assert out.finish_reason == "tool_calls"
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in out.tool_calls.values()] == [
        ("tooluse_0fakeQx7", "get_weather", {"city": "Paris"}),
        ("tooluse_1fakeQx7", "get_weather", {"city": "Oslo"}),
    ]
    assert fake_bedrock.requests[0].headers["accept"] == "application/vnd.amazon.eventstream"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
async def test_stop_reasons(fake_bedrock: FakeBedrock, bedrock: BedrockProvider, stop_reason: str, finish: str) -> None:
    fake_bedrock.reply("Cut", finish=stop_reason, times=2)
    assert (await bedrock.chat(hello(), fake_bedrock.model_config(), CALL)).finish_reason == finish
    assert (await assemble(bedrock.stream(hello(), fake_bedrock.model_config(), CALL))).finish_reason == finish


async def test_prompt_tokens_include_cache_reads_and_writes(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    fake_bedrock.reply("x", prompt_tokens=1000, cached_tokens=600, cache_creation_tokens=300, times=2)
    result = await bedrock.chat(hello(), fake_bedrock.model_config(), CALL)
    streamed = await assemble(bedrock.stream(hello(), fake_bedrock.model_config(), CALL))
    for usage in (result.usage, streamed.usage):
        assert usage is not None
        assert (usage.prompt_tokens, usage.cached_prompt_tokens) == (1000, 600)


@pytest.mark.parametrize("schema", [True, False])
async def test_response_format_asks_for_json_in_the_system_prompt(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider, schema: bool
) -> None:
    await bedrock.chat(json_request(schema), fake_bedrock.model_config(), CALL)
    (instruction,) = fake_bedrock.requests[0].body["system"]
    assert "JSON" in instruction["text"]
    assert ('"properties"' in instruction["text"]) is schema


async def test_frames_split_across_reads(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    fake_bedrock.fragment(7)
    out = await assemble(bedrock.stream(hello(), fake_bedrock.model_config(), CALL))
    assert out.text == fake_bedrock.default_answer.text
    assert out.finish_reason == "stop"
    assert out.usage is not None
    frames = len(fake_bedrock.default_answer.pieces()) + 4  # messageStart, contentBlockStop, messageStop, metadata
    assert fake_bedrock.chunks_sent > 5 * frames, "every frame went out in several pieces"


async def test_a_corrupt_crc_mid_stream_is_malformed(fake_bedrock: FakeBedrock, bedrock: BedrockProvider) -> None:
    fake_bedrock.malformed()
    received, error = await collect_until_error(bedrock.stream(hello(), fake_bedrock.model_config(), CALL))
    assert received == []
    assert (error.kind, error.reason, error.retryable) == (ErrorKind.UNAVAILABLE, "UPSTREAM_MALFORMED", True)
    assert "ChecksumMismatch" in error.message
    assert (await bedrock.chat(hello(), fake_bedrock.model_config(), CALL)).text, "the provider serves on"


@pytest.mark.parametrize(
    ("status", "code", "reason", "retryable"),
    [
        (424, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),  # modelStreamErrorException
        (400, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),  # validationException
    ],
)
async def test_exception_frames_mid_stream(
    fake_bedrock: FakeBedrock,
    bedrock: BedrockProvider,
    status: int,
    code: ErrorKind,
    reason: str,
    retryable: bool,
) -> None:
    fake_bedrock.fail(status, in_stream=True, after_chunks=3, message="stopped midway")
    received, error = await collect_until_error(bedrock.stream(hello(), fake_bedrock.model_config(), CALL))
    assert "".join(received) == "Hello! How"
    assert (error.kind, error.reason, error.retryable) == (code, reason, retryable)
    assert "stopped midway" in error.message


@pytest.mark.parametrize(
    ("errortype", "status", "code", "reason", "retryable"),
    [
        ("ThrottlingException", 429, ErrorKind.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED", True),
        ("ValidationException", 400, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),
        ("AccessDeniedException", 403, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
        ("UnrecognizedClientException", 403, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
        ("ResourceNotFoundException", 404, ErrorKind.FAILED_PRECONDITION, "UPSTREAM_MODEL_NOT_FOUND", False),
        ("ModelNotReadyException", 429, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        ("ModelErrorException", 424, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        ("ModelTimeoutException", 408, ErrorKind.UNAVAILABLE, "UPSTREAM_TIMEOUT", True),
        ("ServiceUnavailableException", 503, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        ("InternalServerException", 500, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        ("ServiceQuotaExceededException", 400, ErrorKind.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED", False),
    ],
)
@pytest.mark.parametrize("where", ["header", "body"])
async def test_errors_map_by_exception_type(
    fake_bedrock: FakeBedrock,
    bedrock: BedrockProvider,
    errortype: str,
    status: int,
    code: ErrorKind,
    reason: str,
    retryable: bool,
    where: str,
) -> None:
    message = f"{errortype} from the fake"
    if where == "header":
        headers = {"x-amzn-errortype": f"{errortype}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
        fake_bedrock.fail(status, message=message, headers=headers)
    else:  # the JSON protocols' shape: the type in the body only
        body = json.dumps({"__type": f"com.amazon.bedrock#{errortype}", "message": message}).encode()
        fake_bedrock.fail(status, body=body, headers={"x-amzn-errortype": ""})
    with pytest.raises(ProviderError) as caught:
        await bedrock.chat(hello(), fake_bedrock.model_config(), CALL)
    error = caught.value
    assert (error.kind, error.reason, error.retryable, error.http_status) == (code, reason, retryable, status)
    assert message in error.message


async def test_a_model_that_needs_an_inference_profile_is_a_config_error(
    fake_bedrock: FakeBedrock, bedrock: BedrockProvider
) -> None:
    fake_bedrock.fail(
        400,
        message="Invocation of model ID anthropic.claude-3-5-sonnet-20241022-v2:0 with on-demand throughput isn't "
        "supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
    )
    with pytest.raises(ProviderError) as caught:
        await bedrock.chat(hello(), fake_bedrock.model_config(), CALL)
    assert (caught.value.kind, caught.value.reason, caught.value.retryable) == (
        ErrorKind.FAILED_PRECONDITION,
        "UPSTREAM_MODEL_NOT_FOUND",
        False,
    )
    assert "us.<model id>" in caught.value.message


def test_config_refuses_an_api_key_and_a_profile_elsewhere() -> None:
    with pytest.raises(ValueError, match="remove api_key_env"):
        ProviderConfig(name="b", type="bedrock", api_key_env="X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bedrock only"):
        ProviderConfig(name="o", type="openai", profile="dev")  # type: ignore[arg-type]
