"""OpenAIProvider against the fake Chat Completions API."""

from __future__ import annotations

import pytest

from gateway.providers.openai import OpenAIProvider
from tests.fakes import FakeOpenAI
from tests.providers.contract import ProviderContract


class TestOpenAIContract(ProviderContract):
    adapter = OpenAIProvider

    @pytest.fixture
    def fake(self, fake_openai: FakeOpenAI) -> FakeOpenAI:
        return fake_openai
