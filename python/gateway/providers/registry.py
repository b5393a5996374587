"""Builds a provider adapter from its config. Adding a provider adds its module and one line here."""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.schema import ProviderConfig, ProviderType
from gateway.providers.base import Provider
from gateway.providers.simulated import SimulatedProvider

ADAPTERS: dict[ProviderType, Callable[[ProviderConfig], Provider]] = {
    ProviderType.SIMULATED: SimulatedProvider,
}


def build_provider(config: ProviderConfig) -> Provider:
    return ADAPTERS[config.type](config)
