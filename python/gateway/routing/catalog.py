"""The configured models (each a pool of one or more deployments, bound to provider adapters) and routes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config.routes import RouteConfig
from gateway.config.schema import GatewayConfig, ModelConfig
from gateway.errors import InvalidRequest
from gateway.providers.base import Provider
from gateway.providers.registry import build_provider

DEPLOYMENT_PRICES = (
    "input_cost_per_mtok",
    "output_cost_per_mtok",
    "cached_input_cost_per_mtok",
    "batch_input_cost_per_mtok",
    "batch_output_cost_per_mtok",
    "prices",
)
"""The prices a deployment may set for itself (time-of-day `prices` included); those it leaves unset are the
model's."""


@dataclass(frozen=True, slots=True)
class Target:
    """One deployment of a model: the model's config as served there, and the provider adapter that serves it."""

    model: ModelConfig
    provider: Provider
    key: str = ""
    """`model@provider`, the target's name in health tracking; derived, stored because it is read on every call."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.model.name}@{self.provider.name}")


class ModelCatalog:
    def __init__(self, pools: dict[str, list[Target]], routes: dict[str, RouteConfig]) -> None:
        self._pools = pools
        self._routes = routes

    @classmethod
    def from_config(cls, config: GatewayConfig, state_dir: Path) -> ModelCatalog:
        providers = {p.name: build_provider(p, state_dir) for p in config.providers}
        pools: dict[str, list[Target]] = {}
        for model in config.models:
            deployments = [model] + [
                model.model_copy(
                    update={
                        "provider": d.provider,
                        "upstream_model": d.upstream_model or model.upstream,
                        "quota": d.quota or model.quota,
                        **{price: getattr(d, price) for price in DEPLOYMENT_PRICES if getattr(d, price) is not None},
                    }
                )
                for d in model.deployments
            ]
            pools[model.name] = [Target(d, providers[d.provider]) for d in deployments]
        return cls(pools, {r.name: r for r in config.routes})

    def lookup(self, name: str) -> list[Target] | RouteConfig:
        """The pool of a model, or a route's config; INVALID_ARGUMENT for a name the config does not define."""
        found = self._pools.get(name) or self._routes.get(name)
        if found is None:
            known = sorted([*self._pools, *self._routes])
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise InvalidRequest(
                f"unknown model {name!r}; configured models and routes: {shown}",
                reason="UNKNOWN_MODEL",
                metadata={"model": name, "param": "model"},
            )
        return found

    def pool(self, model: str) -> list[Target]:
        return self._pools[model]

    def deployment(self, model: str, provider: str) -> Target | None:
        """The target of `model` on `provider`, if the config still has it."""
        return next((t for t in self._pools.get(model, ()) if t.provider.name == provider), None)

    def primary(self, name: str) -> Target:
        """The first deployment of a model, or of a route's first target: whose tokenizer counts for the name."""
        found = self.lookup(name)
        if isinstance(found, list):
            return found[0]
        first = found.targets[0].model if found.targets else found.default
        assert first is not None
        return self.primary(first)

    def targets(self) -> list[Target]:
        return [target for pool in self._pools.values() for target in pool]

    def model_names(self) -> list[str]:
        return list(self._pools)

    def routes(self) -> list[RouteConfig]:
        return list(self._routes.values())

    async def aclose(self) -> None:
        for provider in {id(t.provider): t.provider for t in self.targets()}.values():
            await provider.aclose()
