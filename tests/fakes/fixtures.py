"""Pytest fixtures starting fake providers (loaded as a plugin by tests/conftest.py).

Each fixture yields a started fake whose credentials are exported in the environment (its API key in the variable its
provider_config() names; for Bedrock, AWS's variables), so `build_provider(fake.provider_config(), state_dir)`
authenticates; the fake is closed at the end of the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes import FakeAnthropic, FakeBedrock, FakeGemini, FakeOpenAI, FakeProvider, start_fake


class FakeProviders:
    """Starts any number of fakes in one test (`await fake_providers.start("openai", **options)`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch
        self.started: list[FakeProvider] = []

    async def start(self, kind: str, **options: Any) -> Any:
        fake = await start_fake(kind, **options)
        for name, value in fake.environment().items():
            if value is None:
                self._monkeypatch.delenv(name, raising=False)
            else:
                self._monkeypatch.setenv(name, value)
        self.started.append(fake)
        return fake

    async def close(self) -> None:
        for fake in reversed(self.started):
            await fake.close()


@pytest.fixture
async def fake_providers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeProviders]:
    fakes = FakeProviders(monkeypatch)
    try:
        yield fakes
    finally:
        await fakes.close()


@pytest.fixture
async def fake_openai(fake_providers: FakeProviders) -> FakeOpenAI:
    fake: FakeOpenAI = await fake_providers.start("openai")
    return fake


@pytest.fixture
async def fake_azure_openai(fake_providers: FakeProviders) -> FakeOpenAI:
    fake: FakeOpenAI = await fake_providers.start("azure_openai")
    return fake


@pytest.fixture
async def fake_openai_compatible(fake_providers: FakeProviders) -> FakeOpenAI:
    fake: FakeOpenAI = await fake_providers.start("openai_compatible")
    return fake


@pytest.fixture
async def fake_anthropic(fake_providers: FakeProviders) -> FakeAnthropic:
    fake: FakeAnthropic = await fake_providers.start("anthropic")
    return fake


@pytest.fixture
async def fake_gemini(fake_providers: FakeProviders) -> FakeGemini:
    fake: FakeGemini = await fake_providers.start("gemini")
    return fake


@pytest.fixture
async def fake_bedrock(fake_providers: FakeProviders) -> FakeBedrock:
    fake: FakeBedrock = await fake_providers.start("bedrock")
    return fake
