"""Metrics and trace context through a running gateway: /metrics counts the calls made, and a caller's W3C trace
continues to the provider's HTTP request."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from prometheus_client.parser import text_string_to_metric_families

from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes.fixtures import FakeProviders
from tests.server.fixtures import AUTH, StartGateway

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


async def test_metrics_count_calls_by_model_and_status(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway()
    admin = Admin.on(channel)
    for _ in range(3):
        await admin.gateway.Chat(chat_request("fast"), metadata=AUTH)
    async for _ in admin.gateway.ChatStream(chat_request("fast"), metadata=AUTH):
        pass
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await admin.gateway.Chat(chat_request("broken"), metadata=AUTH)
    assert broken.value.code() is grpc.StatusCode.UNAVAILABLE
    assert gateway.metrics_server is not None
    samples = await scrape(gateway.metrics_server.url)
    assert value(samples, "llm_gateway_requests_total", model="fast", code="OK", kind="chat") == 3
    assert value(samples, "llm_gateway_requests_total", model="fast", code="OK", kind="stream") == 1
    assert value(samples, "llm_gateway_requests_total", model="broken", code="UNAVAILABLE") == 1
    assert value(samples, "llm_gateway_in_flight_requests") == 0
    assert value(samples, "llm_gateway_provider_attempts_total", model="broken", outcome="error") == 1
    assert value(samples, "llm_gateway_cost_usd_total", model="fast") > 0
    assert value(samples, "gen_ai_server_time_to_first_token_seconds_count", gen_ai_request_model="fast") == 1


async def test_a_callers_trace_continues_to_the_provider(
    start_gateway: StartGateway, fake_providers: FakeProviders, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = await fake_providers.start("openai")
    _, channel = await start_gateway(
        f"providers:\n  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}\n"
        "models:\n  - {name: gpt, provider: openai, upstream_model: gpt-4o}\n"
        "observe: {tracing: {exporter: console}}\n"
    )
    admin = Admin.on(channel)
    await admin.gateway.Chat(chat_request("gpt"), metadata=(*AUTH, ("traceparent", TRACEPARENT)))
    sent = fake.requests[-1].headers
    assert sent["traceparent"].split("-")[1] == TRACE_ID
    assert sent["traceparent"].split("-")[2] != "00f067aa0ba902b7"  # the gateway's own attempt span is the parent


async def test_without_tracing_nothing_is_sent_upstream(
    start_gateway: StartGateway, fake_providers: FakeProviders
) -> None:
    fake = await fake_providers.start("openai")
    _, channel = await start_gateway(
        f"providers:\n  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}\n"
        "models:\n  - {name: gpt, provider: openai, upstream_model: gpt-4o}\n"
    )
    await Admin.on(channel).gateway.Chat(chat_request("gpt"), metadata=(*AUTH, ("traceparent", TRACEPARENT)))
    assert "traceparent" not in {k.lower() for k in fake.requests[-1].headers}


async def test_gauges_show_breakers_and_budget_remaining(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway()
    admin = Admin.on(channel)
    secret, _ = await admin.key(team="thrifty")
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="team", subject="thrifty", period="day", hard_usd=1.0)),
        metadata=AUTH,
    )
    response = await admin.gateway.Chat(chat_request("fast"), metadata=bearer(secret))
    for _ in range(6):  # the breaker opens after 5 consecutive failures
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await admin.gateway.Chat(chat_request("broken"), metadata=AUTH)
        assert broken.value.code() is grpc.StatusCode.UNAVAILABLE
    assert gateway.metrics_server is not None
    samples = await scrape(gateway.metrics_server.url)
    assert value(samples, "llm_gateway_circuit_breaker_state", model="broken") == 2.0  # open
    assert value(samples, "llm_gateway_circuit_breaker_state", model="fast") == 0.0
    remaining = value(samples, "llm_gateway_budget_remaining_usd", team="thrifty")
    assert remaining == pytest.approx(1.0 - response.usage.cost_usd)
