"""The models and routes a key may call, as both front doors list them (gRPC ListModels, HTTP GET /v1/models)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.pipeline import Pipeline
from gateway.records.governance import KeyRecord


@dataclass(frozen=True, slots=True)
class Listed:
    id: str
    kind: str
    """chat or embedding."""
    provider: str = ""
    provider_type: str = ""
    upstream_model: str = ""
    context_window: int = 0
    max_output_tokens: int = 0
    input_cost_per_mtok: float = 0.0
    output_cost_per_mtok: float = 0.0
    capabilities: tuple[str, ...] = ()
    simulated: bool = False
    dimensions: int = 0
    route_strategy: str = ""
    """Set for a route (a name that routes among models), whose provider fields are empty."""
    route_targets: tuple[str, ...] = ()


def visible_models(pipeline: Pipeline, key: KeyRecord) -> list[Listed]:
    catalog = pipeline.catalog()
    listed = [
        Listed(
            id=t.model.name,
            kind=t.model.kind.value,
            provider=t.provider.name,
            provider_type=t.provider.config.type.value,
            upstream_model=t.model.upstream,
            context_window=t.model.context_window,
            max_output_tokens=t.model.max_output_tokens,
            input_cost_per_mtok=t.model.input_cost_per_mtok,
            output_cost_per_mtok=t.model.output_cost_per_mtok,
            capabilities=tuple(sorted(t.model.capabilities)),
            simulated=t.provider.simulated,
            dimensions=t.model.dimensions or 0,
        )
        for t in (catalog.pool(name)[0] for name in catalog.model_names())
        if key.may_call(t.model.name)
    ]
    listed += [
        Listed(
            id=route.name,
            kind=catalog.primary(route.name).model.kind.value,
            route_strategy=route.strategy.value,
            route_targets=tuple([t.model for t in route.targets] or [r.target for r in route.rules]),
        )
        for route in pipeline.routes()
        if key.may_call(route.name)
    ]
    return listed
