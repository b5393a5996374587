"""The cost of a routing decision with 20 targets, per strategy, beside a direct model lookup (the floor).

pytest benches/routing --benchmark-enable
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway.chat import ChatRequest, Message
from gateway.config.loader import validate_config
from gateway.routing.catalog import ModelCatalog
from gateway.routing.features import RequestFeatures
from gateway.routing.health import HealthBoard
from gateway.routing.router import Router

TARGETS = 20


def _router() -> Router:
    providers = [{"name": f"p{i}", "type": "simulated"} for i in range(TARGETS)]
    models = [
        {
            "name": f"m{i}",
            "provider": f"p{i}",
            "input_cost_per_mtok": 0.1 * (i + 1),
            "output_cost_per_mtok": 0.4 * (i + 1),
        }
        for i in range(TARGETS)
    ]
    targets = [{"model": f"m{i}", "weight": i + 1} for i in range(TARGETS)]
    routes = [
        {"name": strategy, "strategy": strategy, "targets": targets}
        for strategy in ("fallback", "weighted", "least_latency", "cost")
    ]
    routes.append(
        {
            "name": "rules",
            "strategy": "rules",
            "rules": [
                {"name": f"r{i}", "when": {"keywords": [f"topic{i}"], "max_prompt_tokens": 500}, "target": f"m{i}"}
                for i in range(TARGETS)
            ],
            "default": "fallback",
        }
    )
    config = validate_config({"providers": providers, "models": models, "routes": routes}, lines={}, source="bench")
    catalog = ModelCatalog.from_config(config, Path(tempfile.gettempdir()))  # no batch: nothing is written there
    board = HealthBoard(config.circuit_breaker)
    rng = random.Random(0)
    for target in catalog.targets():
        board[target.key].observe(rng.uniform(0.01, 0.2), rng.uniform(0.1, 1.0))
    return Router(catalog, board, rng)


ROUTER = _router()
REQUEST = ChatRequest(model="x", messages=[Message("user", "Tell me about topic19 and how it relates to routing.")])


def _features() -> RequestFeatures:
    # A fresh object per call, as per request; the prompt is counted once per tokenizer (12 tokens here).
    return RequestFeatures(REQUEST, team="", streaming=False, count_prompt=lambda _m: 12, prompt_bound=400)


@pytest.mark.parametrize("name", ["m0", "fallback", "weighted", "least_latency", "cost", "rules"])
def test_route_decision(benchmark: BenchmarkFixture, name: str) -> None:
    benchmark.group = "routing decision, 20 targets (m0 = a model named directly, the floor)"
    plan = benchmark(lambda: ROUTER.plan(name, _features()))
    assert plan.candidates
