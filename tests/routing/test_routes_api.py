"""Routes through the gRPC API with simulated providers: fallback, breakers, rules, weights, visibility."""

from __future__ import annotations

from collections import Counter

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim-a, type: simulated, simulation: {max_answer_tokens: 8}}
  - {name: sim-b, type: simulated, simulation: {max_answer_tokens: 8}}
  - {name: sim-down, type: simulated, simulation: {error_rate: 1.0}}
models:
  - {name: small, provider: sim-a, context_window: 4000, input_cost_per_mtok: 0.1, output_cost_per_mtok: 0.4}
  - {name: large, provider: sim-b, context_window: 100000, input_cost_per_mtok: 3, output_cost_per_mtok: 15}
  - {name: down, provider: sim-down}
  - name: pooled
    provider: sim-down
    deployments: [{provider: sim-a}]
circuit_breaker: {consecutive_failures: 2, open_s: 60}
routes:
  - name: resilient
    strategy: fallback
    targets: [{model: down}, {model: small}]
    retries: {max_attempts: 3, backoff_ms: 1}
  - name: split
    strategy: weighted
    targets: [{model: small, weight: 3}, {model: large, weight: 1}]
  - name: sticky
    strategy: weighted
    sticky: metadata:tenant
    targets: [{model: small, weight: 1}, {model: large, weight: 1}]
  - name: auto
    strategy: rules
    rules:
      - {name: short, when: {max_prompt_tokens: 30}, target: small}
      - {name: code, when: {regex: "def \\\\w+\\\\("}, target: large}
    default: large
  - name: cheapest
    strategy: cost
    targets: [{model: large}, {model: small}]
  - name: all-down
    strategy: fallback
    targets: [{model: down}]
    retries: {max_attempts: 2, backoff_ms: 1}
"""


def ask(model: str, text: str = "hello", **fields: object) -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[pb.Message(role="user", content=text)], **fields)  # type: ignore[arg-type]


@pytest.fixture
async def stub(start_gateway: StartGateway) -> gateway_pb2_grpc.GatewayStub:
    _, channel = await start_gateway(CONFIG)
    return gateway_pb2_grpc.GatewayStub(channel)


async def test_fallback_reaches_a_healthy_target_and_shows_every_attempt(stub: gateway_pb2_grpc.GatewayStub) -> None:
    response = await stub.Chat(ask("resilient"), metadata=AUTH)
    assert response.model == "small"
    route = response.route
    assert route.route == "resilient"
    assert route.strategy == "fallback"
    assert [(a.model, a.outcome) for a in route.attempts] == [("down", "error"), ("small", "ok")]
    assert route.attempts[0].code == "UNAVAILABLE"
    assert route.attempts[0].reason == "SIMULATED_FAILURE"
    assert route.attempts[1].retry == 1


async def test_breaker_opens_and_the_failing_target_is_skipped(stub: gateway_pb2_grpc.GatewayStub) -> None:
    for _ in range(2):
        await stub.Chat(ask("resilient"), metadata=AUTH)
    response = await stub.Chat(ask("resilient"), metadata=AUTH)
    assert [(a.model, a.outcome) for a in response.route.attempts] == [("small", "ok")]


async def test_streaming_fails_over_before_the_first_chunk(stub: gateway_pb2_grpc.GatewayStub) -> None:
    chunks = [c async for c in stub.ChatStream(ask("resilient"), metadata=AUTH)]
    assert chunks[0].model == "small"
    final = chunks[-1]
    assert [(a.model, a.outcome) for a in final.route.attempts] == [("down", "error"), ("small", "ok")]
    assert final.usage.completion_tokens > 0


async def test_all_attempts_failing_reports_the_last_error(stub: gateway_pb2_grpc.GatewayStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask("all-down"), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "all 2 attempts failed" in (caught.value.details() or "")


async def test_pool_fails_over_between_deployments(stub: gateway_pb2_grpc.GatewayStub) -> None:
    response = await stub.Chat(ask("pooled"), metadata=AUTH)
    assert response.provider == "sim-a"
    assert response.route.strategy == "model"


async def test_rules_send_short_and_long_prompts_where_configured(stub: gateway_pb2_grpc.GatewayStub) -> None:
    short = await stub.Chat(ask("auto", "What are your opening hours?"), metadata=AUTH)
    assert short.model == "small"
    assert "rule 'short' matched" in short.route.reason
    code = await stub.Chat(
        ask("auto", "please review " + "this function carefully " * 10 + "def parse(x): pass"), metadata=AUTH
    )
    assert code.model == "large"
    assert "rule 'code' matched" in code.route.reason
    long = await stub.Chat(ask("auto", "word " * 200), metadata=AUTH)
    assert long.model == "large"
    assert "default" in long.route.reason


async def test_weighted_split_over_many_requests(stub: gateway_pb2_grpc.GatewayStub) -> None:
    counts: Counter[str] = Counter()
    for i in range(400):
        counts[(await stub.Chat(ask("split", f"q{i}"), metadata=AUTH)).model] += 1
    assert abs(counts["small"] / 400 - 0.75) < 0.08


async def test_sticky_weighted_keeps_a_tenant_on_one_arm(stub: gateway_pb2_grpc.GatewayStub) -> None:
    served = {
        (await stub.Chat(ask("sticky", f"q{i}", metadata={"tenant": "acme"}), metadata=AUTH)).model for i in range(20)
    }
    assert len(served) == 1


async def test_cost_route_picks_the_cheapest_that_fits(stub: gateway_pb2_grpc.GatewayStub) -> None:
    cheap = await stub.Chat(ask("cheapest"), metadata=AUTH)
    assert cheap.model == "small"
    assert "cost: small cheapest" in cheap.route.reason
    big = await stub.Chat(ask("cheapest", "word " * 5000), metadata=AUTH)
    assert big.model == "large", "the small model's context window is too small for this prompt"


async def test_routes_are_listed(stub: gateway_pb2_grpc.GatewayStub) -> None:
    listed = {m.id: m for m in (await stub.ListModels(pb.ListModelsRequest(), metadata=AUTH)).models}
    assert listed["auto"].is_route
    assert listed["auto"].route_strategy == "rules"
    assert list(listed["split"].route_targets) == ["small", "large"]
    assert not listed["small"].is_route
