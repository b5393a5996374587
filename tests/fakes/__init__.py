"""Fake providers speaking the real wire formats, for adapter tests and fault injection.

Start one in a test with a fixture (tests/fakes/fixtures.py, loaded by tests/conftest.py): `fake_openai`,
`fake_azure_openai`, `fake_openai_compatible`, `fake_anthropic`, `fake_gemini`, `fake_bedrock`, or `fake_providers` to
start several (`await fake_providers.start("openai", **options)`). Without pytest: `async with FakeOpenAI() as
server: ...` or `server = await start_fake("anthropic")` then `await server.close()`; set the variables of
`server.environment()` before building a provider from `server.provider_config()`. The control API is documented in
tests/fakes/server.py.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.bedrock import FakeBedrock
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import Answer, FakeProvider, Fault, Recorded, Rejected

KINDS = ("openai", "azure_openai", "openai_compatible", "anthropic", "gemini", "bedrock")


def make_fake(kind: str, **options: Any) -> FakeProvider:
    """An unstarted fake for a provider type (the names of ProviderType)."""
    if kind == "openai":
        return FakeOpenAI(**options)
    if kind == "azure_openai":
        return FakeOpenAI(flavour="azure", **options)
    if kind == "openai_compatible":
        return FakeOpenAI(flavour="compatible", **{"api_key": None, **options})
    if kind == "anthropic":
        return FakeAnthropic(**options)
    if kind == "gemini":
        return FakeGemini(**options)
    if kind == "bedrock":
        return FakeBedrock(**options)
    raise ValueError(f"no fake for provider type {kind!r}; one of {KINDS}")


async def start_fake(kind: str, **options: Any) -> FakeProvider:
    """A started fake on a free loopback port; close it with `await fake.close()`."""
    return await make_fake(kind, **options).start()


__all__ = [
    "KINDS",
    "Answer",
    "FakeAnthropic",
    "FakeBedrock",
    "FakeGemini",
    "FakeOpenAI",
    "FakeProvider",
    "Fault",
    "Recorded",
    "Rejected",
    "make_fake",
    "start_fake",
]
