"""AzureOpenAIProvider against the fake in its Azure variant (deployment URLs, api-version, api-key header)."""

from __future__ import annotations

import pytest

from gateway.errors import ProviderError
from gateway.providers.azure_openai import AzureOpenAIProvider
from tests.fakes import FakeOpenAI, FakeProvider
from tests.providers.contract import CALL, ProviderContract
from tests.providers.samples import assemble, hello


class TestAzureOpenAIContract(ProviderContract):
    adapter = AzureOpenAIProvider
    frames_before_text = 2  # Azure's stream opens with a prompt_filter_results chunk, then the role chunk

    @pytest.fixture
    def fake(self, fake_azure_openai: FakeOpenAI) -> FakeOpenAI:
        return fake_azure_openai

    def make_model_unknown(self, fake: FakeProvider) -> None:
        assert isinstance(fake, FakeOpenAI)
        fake.deployments = {"another-deployment"}


async def test_request_goes_to_the_deployment_with_api_version_and_api_key(fake_azure_openai: FakeOpenAI) -> None:
    provider = AzureOpenAIProvider(fake_azure_openai.provider_config())
    model = fake_azure_openai.model_config()
    try:
        await provider.chat(hello(max_tokens=50), model, CALL)
        out = await assemble(provider.stream(hello(), model, CALL))
    finally:
        await provider.aclose()
    first, second = fake_azure_openai.requests
    assert first.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert first.query == {"api-version": "2024-10-21"}
    assert first.headers["api-key"] == fake_azure_openai.api_key
    assert "authorization" not in first.headers
    assert "model" not in first.body
    assert first.body["max_completion_tokens"] == 50
    assert second.body["stream_options"] == {"include_usage": True}
    assert out.upstream_model == "gpt-4o-mini-2024-07-18"  # Azure's first chunk has model "", later ones the real one


async def test_retry_after_ms_is_preferred(fake_azure_openai: FakeOpenAI) -> None:
    provider = AzureOpenAIProvider(fake_azure_openai.provider_config())
    fake_azure_openai.fail(429, headers={"retry-after": "2", "retry-after-ms": "1500"})
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), fake_azure_openai.model_config(), CALL)
    finally:
        await provider.aclose()
    assert getattr(caught.value, "retry_after", None) == pytest.approx(1.5)


async def test_wrong_api_version_is_not_found(fake_azure_openai: FakeOpenAI) -> None:
    provider = AzureOpenAIProvider(fake_azure_openai.provider_config(api_version="2020-01-01"))
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.chat(hello(), fake_azure_openai.model_config(), CALL)
    finally:
        await provider.aclose()
    assert getattr(caught.value, "reason", None) == "UPSTREAM_MODEL_NOT_FOUND"
