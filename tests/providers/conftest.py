"""Fixtures shared by the provider tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.fakes import FakeBedrock

if TYPE_CHECKING:
    from gateway.providers.bedrock import BedrockProvider


@pytest.fixture
async def bedrock(fake_bedrock: FakeBedrock) -> AsyncIterator[BedrockProvider]:
    """A BedrockProvider on the fake Bedrock, with its credentials."""
    from gateway.providers.bedrock import BedrockProvider  # botocore: only for the tests that use it

    provider = BedrockProvider(fake_bedrock.provider_config())
    yield provider
    await provider.aclose()
