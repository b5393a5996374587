"""Which providers have a batch API the gateway speaks. Adding one adds its module and one line here.

Bedrock's batch inference is missing: it reads its input from and writes its output to S3 (CreateModelInvocationJob
with an S3 input and output location and an IAM role), which the gateway does not manage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.batches.adapters.anthropic import AnthropicBatches
from gateway.batches.adapters.base import BatchApi
from gateway.batches.adapters.gemini import GeminiBatches
from gateway.batches.adapters.openai import AzureOpenAIBatches, OpenAIBatches
from gateway.config.schema import ProviderType
from gateway.providers.base import Provider

ADAPTERS: dict[ProviderType, Callable[[Any], BatchApi]] = {
    ProviderType.OPENAI: OpenAIBatches,
    ProviderType.AZURE_OPENAI: AzureOpenAIBatches,
    ProviderType.ANTHROPIC: AnthropicBatches,
    ProviderType.GEMINI: GeminiBatches,
}


def batch_api(provider: Provider) -> BatchApi | None:
    """The provider's batch API; None for a provider without one."""
    build = ADAPTERS.get(provider.config.type)
    return build(provider) if build is not None else None
