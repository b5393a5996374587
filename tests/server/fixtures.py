"""Fixtures (a pytest plugin, see tests/conftest.py) that run a real gateway in-process on a free loopback port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import pytest
from llmgateway.v1 import gateway_pb2_grpc
from opentelemetry.sdk.trace.export import SpanExporter

from gateway.config.loader import parse_config
from gateway.server.app import Gateway, build_gateway

TEST_KEY = "gw-test-key-0123456789"
AUTH = (("authorization", f"Bearer {TEST_KEY}"),)

SIMULATED_CONFIG = """
providers:
  - name: sim
    type: simulated
    simulation: {max_answer_tokens: 24}
  - name: sim-slow
    type: simulated
    simulation: {time_to_first_token_ms: 1500, per_token_ms: 5}
  - name: sim-broken
    type: simulated
    simulation: {error_rate: 1.0}
models:
  - name: fast
    provider: sim
    input_cost_per_mtok: 1.0
    output_cost_per_mtok: 2.0
    context_window: 200
    max_output_tokens: 100
    tokenizer: o200k_base
    capabilities: [streaming, tools]
  - name: slow
    provider: sim-slow
  - name: broken
    provider: sim-broken
keys:
  - name: limited
    key_env: LIMITED_TEST_KEY
    models: [fast]
"""

StartGateway = Callable[..., Coroutine[Any, Any, tuple[Gateway, grpc.aio.Channel]]]


@pytest.fixture
async def start_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[StartGateway]:
    """Starts a gateway from YAML text; returns it with a channel to it. Everything is stopped after the test."""
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", TEST_KEY)
    started: list[tuple[Gateway, grpc.aio.Channel]] = []

    async def start(
        config_text: str = SIMULATED_CONFIG,
        *,
        span_exporter: SpanExporter | None = None,
        drift_clock: Callable[[], float] = time.time,
        http: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> tuple[Gateway, grpc.aio.Channel]:
        """`http`: serve the OpenAI-compatible front door too, on a free port (`gateway.http.port`); `clock`: what
        time-of-day prices and held calls follow."""
        gateway = await build_gateway(
            parse_config(config_text),
            address="127.0.0.1:0",
            state_dir=tmp_path,
            metrics_address="127.0.0.1:0",
            span_exporter=span_exporter,
            drift_clock=drift_clock,
            http_address="127.0.0.1:0" if http else "",
            clock=clock,
        )
        await gateway.server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
        started.append((gateway, channel))
        return gateway, channel

    yield start
    for gateway, channel in started:
        await channel.close()
        await gateway.stop(0)


@pytest.fixture
async def stub(start_gateway: StartGateway) -> gateway_pb2_grpc.GatewayStub:
    _, channel = await start_gateway()
    return gateway_pb2_grpc.GatewayStub(channel)
