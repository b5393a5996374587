"""The configured models, each bound to the provider adapter that serves it."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.schema import GatewayConfig, ModelConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import Provider
from gateway.providers.registry import build_provider


@dataclass(frozen=True, slots=True)
class Target:
    model: ModelConfig
    provider: Provider


class ModelCatalog:
    def __init__(self, targets: dict[str, Target]) -> None:
        self._targets = targets

    @classmethod
    def from_config(cls, config: GatewayConfig) -> ModelCatalog:
        providers = {p.name: build_provider(p) for p in config.providers}
        return cls({m.name: Target(m, providers[m.provider]) for m in config.models})

    def resolve(self, name: str) -> Target:
        target = self._targets.get(name)
        if target is None:
            known = sorted(self._targets)
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise InvalidRequest(
                f"unknown model {name!r}; configured models: {shown}", reason="UNKNOWN_MODEL", metadata={"model": name}
            )
        return target

    def targets(self) -> list[Target]:
        return list(self._targets.values())

    async def aclose(self) -> None:
        for provider in {id(t.provider): t.provider for t in self._targets.values()}.values():
            await provider.aclose()
