"""OpenAICompatibleProvider against the fake in its "any server" variant: optional key, servers without usage in
streams, servers that reject stream_options, streams without [DONE]."""

from __future__ import annotations

import pytest
from gateway.errors import ProviderError
from gateway.providers.openai_compatible import OpenAICompatibleProvider

from tests.fakes import FakeOpenAI, FakeProvider
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

    async def test_missing_key_fails_before_sending(self, fake: FakeProvider, model: object) -> None:
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
