"""Insights.GetModelHealth and GetAnalytics through a running gateway: drift flagged when a provider's answers get
longer and slower and not under steady traffic, and spend per team x model x route with the cheaper alternative."""

from __future__ import annotations

import aiohttp
import grpc
import pytest
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import Answer
from tests.server.fixtures import AUTH, StartGateway

WINDOW_S = 300.0


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
  - {{name: sim, type: simulated}}
models:
  - {{name: gpt, provider: openai, upstream_model: gpt-4o, input_cost_per_mtok: 5, output_cost_per_mtok: 15}}
  - {{name: mini, provider: sim, input_cost_per_mtok: 0.1, output_cost_per_mtok: 0.4}}
observe:
  drift: {{window_s: {WINDOW_S}, baseline_windows: 3, min_samples: 5, min_baseline_samples: 12,
           consecutive_windows: 1}}
"""


class Clock:
    """The drift monitor's clock, moved by the test: windows close exactly where the test says."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def window(admin: Admin, clock: Clock, calls: int) -> None:
    """`calls` calls spread over one drift window."""
    for _ in range(calls):
        await admin.gateway.Chat(chat_request("gpt"), metadata=AUTH)
        clock.now += WINDOW_S / calls


async def health(insights: insights_pb2_grpc.InsightsStub) -> pb.ModelHealth:
    response = await insights.GetModelHealth(pb.GetModelHealthRequest(model="gpt"), metadata=AUTH)
    [model] = response.models
    return model


@pytest.mark.parametrize("changes", [False, True])
async def test_drift_is_flagged_when_answers_get_longer_and_slower_only(
    start_gateway: StartGateway, fake_providers: FakeProviders, changes: bool
) -> None:
    fake: FakeOpenAI = await fake_providers.start("openai")
    fake.default_answer = Answer(text="short answer", prompt_tokens=13, completion_tokens=9)
    clock = Clock()
    gateway, channel = await start_gateway(config(fake), drift_clock=clock)
    admin, insights = Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)
    for _ in range(4):
        await window(admin, clock, 12)
    if changes:
        fake.default_answer = Answer(text="a much longer answer " * 20, prompt_tokens=13, completion_tokens=420)
        fake.slow(first_byte_delay=0.05, times=1000)
    for _ in range(3):
        await window(admin, clock, 12)
    await admin.gateway.Chat(chat_request("gpt"), metadata=AUTH)  # closes the last window
    model = await health(insights)
    # A flag holds while the shift does; windows with too few calls to test can end it, so both lists count.
    flagged = {flag.metric for flag in (*model.flags, *model.ended)}
    if changes:
        assert "answer_tokens" in flagged, model
        assert "latency_s" in flagged
        answer = next(f for f in (*model.flags, *model.ended) if f.metric == "answer_tokens")
        assert answer.value > answer.threshold
        assert answer.since.seconds > 0
    else:
        assert not flagged, [f.detail for f in (*model.flags, *model.ended)]
    assert {f.metric for f in model.current} >= {"latency_s", "answer_tokens", "status"}
    assert gateway.metrics_server is not None
    async with aiohttp.ClientSession() as session, session.get(gateway.metrics_server.url) as scraped:
        text = await scraped.text()
    raised = [line for line in text.splitlines() if line.startswith("llm_gateway_drift_flags_total{")]
    assert bool(raised) == changes
    if changes:
        assert any('metric="answer_tokens"' in line for line in raised)


async def test_analytics_shows_spend_and_the_cheaper_capable_model(
    start_gateway: StartGateway, fake_providers: FakeProviders
) -> None:
    fake: FakeOpenAI = await fake_providers.start("openai")
    fake.default_answer = Answer(text="hello", prompt_tokens=1000, completion_tokens=500)
    gateway, channel = await start_gateway(config(fake))
    admin, insights = Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)
    secret, _ = await admin.key(team="red")
    for _ in range(3):
        await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(secret))
    await gateway.audit.flush()
    response = await insights.GetAnalytics(pb.GetAnalyticsRequest(team="red"), metadata=AUTH)
    [row] = response.rows
    assert (row.team, row.model, row.requests, row.calls) == ("red", "gpt", 3, 3)
    assert row.cost_usd == pytest.approx(3 * (1000 * 5 + 500 * 15) / 1e6)
    assert row.cheapest_model == "mini"
    assert row.cheapest_cost_usd == pytest.approx(3 * (1000 * 0.1 + 500 * 0.4) / 1e6)
    assert row.saving_usd == pytest.approx(row.cost_usd - row.cheapest_cost_usd)
    assert row.error_rate == 0.0
    assert response.total_saving_usd == pytest.approx(row.saving_usd)
    member, _ = await admin.key(team="blue")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.GetAnalytics(pb.GetAnalyticsRequest(), metadata=bearer(member))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_prompt_length_is_kept_per_route_rule(start_gateway: StartGateway, fake_providers: FakeProviders) -> None:
    fake: FakeOpenAI = await fake_providers.start("openai")
    clock = Clock()
    routes = """
routes:
  - name: auto
    strategy: rules
    rules:
      - {name: legal, when: {keywords: [contract]}, target: gpt}
    default: gpt
"""
    _, channel = await start_gateway(config(fake) + routes, drift_clock=clock)
    admin, insights = Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)
    await admin.gateway.Chat(chat_request("auto", text="Review this contract"), metadata=AUTH)
    await admin.gateway.Chat(chat_request("auto", text="Hello"), metadata=AUTH)
    clock.now += WINDOW_S
    await admin.gateway.Chat(chat_request("gpt"), metadata=AUTH)  # closes the window
    metrics = {f.metric: f.count for f in (await health(insights)).current}
    assert metrics["prompt_tokens:auto/legal"] == 1
    assert metrics["prompt_tokens:auto/default"] == 1
