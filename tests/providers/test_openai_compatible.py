"""OpenAICompatibleProvider against the fake in its "any server" variant: optional key, servers without usage in
streams, servers that reject stream_options, streams without [DONE]."""

from __future__ import annotations

import orjson
import pytest

from gateway.config.schema import ModelConfig
from gateway.errors import ProviderError
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from tests.fakes import Answer, FakeOpenAI, FakeProvider
from tests.fakes.fixtures import FakeProviders
from tests.providers.contract import CALL, ProviderContract
from tests.providers.samples import assemble, hello


class TestOpenAICompatibleContract(ProviderContract):
    """With a key (Together, Groq...): the whole contract."""

    adapter = OpenAICompatibleProvider

    @pytest.fixture
    async def fake(self, fake_providers: FakeProviders) -> FakeOpenAI:
        fake: FakeOpenAI = await fake_providers.start("openai_compatible", api_key="gsk_test_0123456789abcdef")
        return fake

    async def test_missing_key_fails_before_sending(
        self, fake: FakeProvider, model: ModelConfig, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pytest.skip("the key is optional for openai_compatible: covered by test_no_key_sends_no_authorization")


async def test_no_key_sends_no_authorization(fake_openai_compatible: FakeOpenAI) -> None:
    provider = OpenAICompatibleProvider(fake_openai_compatible.provider_config())
    try:
        result = await provider.chat(hello(max_tokens=20), fake_openai_compatible.model_config(), CALL)
    finally:
        await provider.aclose()
    assert result.text == fake_openai_compatible.default_answer.text
    request = fake_openai_compatible.requests[0]
    assert "authorization" not in request.headers
    assert request.body["max_tokens"] == 20
    assert "max_completion_tokens" not in request.body


async def test_server_without_stream_usage_gives_usage_none(fake_providers: FakeProviders) -> None:
    fake = await fake_providers.start("openai_compatible", stream_usage=False, send_done=False)
    provider = OpenAICompatibleProvider(fake.provider_config())
    try:
        out = await assemble(provider.stream(hello(), fake.model_config(), CALL))
    finally:
        await provider.aclose()
    assert out.text == fake.default_answer.text
    assert out.finish_reason == "stop"
    assert out.usage is None


async def test_server_rejecting_stream_options_gets_the_request_again_without(fake_providers: FakeProviders) -> None:
    fake = await fake_providers.start("openai_compatible", reject_stream_options=True)
    provider = OpenAICompatibleProvider(fake.provider_config())
    try:
        first = await assemble(provider.stream(hello(), fake.model_config(), CALL))
        second = await assemble(provider.stream(hello(), fake.model_config(), CALL))
    finally:
        await provider.aclose()
    assert first.text == second.text == fake.default_answer.text
    assert first.usage is None
    assert ["stream_options" in r.body for r in fake.requests] == [True, False, False]


async def test_other_400s_on_streams_are_not_retried(fake_openai_compatible: FakeOpenAI) -> None:
    provider = OpenAICompatibleProvider(fake_openai_compatible.provider_config())
    fake_openai_compatible.fail(400, message="context length exceeded")
    try:
        with pytest.raises(ProviderError) as caught:
            await assemble(provider.stream(hello(), fake_openai_compatible.model_config(), CALL))
    finally:
        await provider.aclose()
    assert caught.value.reason == "UPSTREAM_REJECTED_REQUEST"
    assert len(fake_openai_compatible.requests) == 1


async def test_whole_json_answer_to_a_stream_request_becomes_one_delta(fake_openai_compatible: FakeOpenAI) -> None:
    provider = OpenAICompatibleProvider(fake_openai_compatible.provider_config())
    whole = fake_openai_compatible.answer_body(Answer(model="served-model"), None, None)  # type: ignore[arg-type]
    fake_openai_compatible.fail(200, body=orjson.dumps(whole), headers={"content-type": "application/json"})
    try:
        out = await assemble(provider.stream(hello(), fake_openai_compatible.model_config(), CALL))
    finally:
        await provider.aclose()
    assert out.deltas == 1
    assert out.text == fake_openai_compatible.default_answer.text
    assert out.finish_reason == "stop"
    assert out.usage is not None
    assert out.upstream_model == "served-model"


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (
            b'{"object": "error", "message": "bad input", "type": "BadRequestError", "code": 400}',
            400,
            "UPSTREAM_REJECTED_REQUEST",
        ),
        (
            b'{"error": {"object": "error", "message": "engine dead", "type": "InternalServerError", "code": 500}}',
            500,
            "UPSTREAM_UNAVAILABLE",
        ),
        (b'{"error": "model is loading"}', 500, "UPSTREAM_UNAVAILABLE"),
    ],
)
async def test_in_stream_errors_of_other_servers(
    fake_openai_compatible: FakeOpenAI, event: bytes, status: int, reason: str
) -> None:
    """vLLM (both of its shapes) and Ollama send errors inside the stream differently from OpenAI."""
    provider = OpenAICompatibleProvider(fake_openai_compatible.provider_config())
    fake_openai_compatible.stream_error_frame = lambda *_: fake_openai_compatible.sse(event)  # type: ignore[method-assign]
    fake_openai_compatible.fail(500, in_stream=True, after_chunks=2)
    try:
        with pytest.raises(ProviderError) as caught:
            await assemble(provider.stream(hello(), fake_openai_compatible.model_config(), CALL))
    finally:
        await provider.aclose()
    assert (caught.value.http_status, caught.value.reason) == (status, reason)
