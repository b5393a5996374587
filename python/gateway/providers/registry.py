"""Builds a provider adapter from its config. Adding a provider adds its module and one line here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway.config.schema import ProviderConfig, ProviderType
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.azure_openai import AzureOpenAIProvider
from gateway.providers.base import Provider
from gateway.providers.gemini import GeminiProvider
from gateway.providers.openai import OpenAIProvider
from gateway.providers.openai_compatible import OpenAICompatibleProvider
from gateway.providers.simulated import SimulatedProvider


def _bedrock(config: ProviderConfig) -> Provider:
    # Imported when a bedrock provider is configured: botocore costs ~0.3 s and several MB that others never use.
    from gateway.providers.bedrock import BedrockProvider

    return BedrockProvider(config)


ADAPTERS: dict[ProviderType, Callable[[ProviderConfig], Provider]] = {
    ProviderType.OPENAI: OpenAIProvider,
    ProviderType.AZURE_OPENAI: AzureOpenAIProvider,
    ProviderType.OPENAI_COMPATIBLE: OpenAICompatibleProvider,
    ProviderType.ANTHROPIC: AnthropicProvider,
    ProviderType.GEMINI: GeminiProvider,
    ProviderType.BEDROCK: _bedrock,
}


def build_provider(config: ProviderConfig, state_dir: Path) -> Provider:
    """`state_dir`: the gateway's state folder, where the simulated provider keeps the batches its batch API made
    (a real provider keeps them on its servers)."""
    if config.type is ProviderType.SIMULATED:
        return SimulatedProvider(config, state_dir)
    return ADAPTERS[config.type](config)
