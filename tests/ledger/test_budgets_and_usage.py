"""Budgets, the ledger and usage queries, against a fake OpenAI server whose reported usage is known exactly."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import timestamp_pb2
from llmgateway.v1 import admin_pb2 as apb

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import Answer
from tests.server.fixtures import AUTH, StartGateway

INPUT, OUTPUT, CACHED = 2.5, 10.0, 1.25


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
  - {{name: sim, type: simulated}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
    cached_input_cost_per_mtok: {CACHED}
    max_output_tokens: 1000
  - name: uncached-price                 # no cached_input_cost_per_mtok: cached prompt tokens bill at the input price
    provider: openai
    upstream_model: gpt-4o
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
  - name: cheap
    provider: sim
    input_cost_per_mtok: 0.1
    output_cost_per_mtok: 0.2
"""


@pytest.fixture
async def fake(fake_providers: FakeProviders) -> FakeOpenAI:
    started: FakeOpenAI = await fake_providers.start("openai")
    started.default_answer = Answer(prompt_tokens=1234, completion_tokens=567, cached_tokens=200)
    return started


@pytest.fixture
async def running(start_gateway: StartGateway, fake: FakeOpenAI) -> tuple[Gateway, Admin]:
    gateway, channel = await start_gateway(config(fake))
    return gateway, Admin.on(channel)


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


async def test_ledger_matches_reported_usage_times_prices_exactly(running: tuple[Gateway, Admin]) -> None:
    gateway, admin = running
    secret, info = await admin.key()
    for _ in range(3):
        await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(secret))
    for _ in range(2):
        async for _chunk in admin.gateway.ChatStream(chat_request("gpt"), metadata=bearer(secret)):
            pass
    await gateway.audit.flush()
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="key", key_id=info.id), metadata=AUTH)
    [row] = usage.rows
    assert row.group == info.id
    assert (row.requests, row.prompt_tokens, row.completion_tokens, row.cached_tokens) == (5, 5 * 1234, 5 * 567, 1000)
    per_call = ((1234 - 200) * INPUT + 200 * CACHED + 567 * OUTPUT) / 1e6
    assert row.cost_usd == pytest.approx(5 * per_call, rel=1e-12, abs=0)
    assert usage.total.cost_usd == row.cost_usd
    by_provider = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="provider"), metadata=AUTH)
    assert [(r.group, r.requests) for r in by_provider.rows] == [("openai", 5)]


async def test_cached_prompt_tokens_bill_at_the_input_price_without_a_cached_price(
    running: tuple[Gateway, Admin],
) -> None:
    gateway, admin = running
    secret, info = await admin.key()
    response = await admin.gateway.Chat(chat_request("uncached-price"), metadata=bearer(secret))
    assert response.usage.cached_prompt_tokens == 200
    billed = (1234 * INPUT + 567 * OUTPUT) / 1e6
    assert response.usage.cost_usd == pytest.approx(billed, rel=1e-12, abs=0)
    await gateway.audit.flush()
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="key", key_id=info.id), metadata=AUTH)
    assert (usage.total.cached_tokens, usage.total.cost_usd) == (200, pytest.approx(billed, rel=1e-12, abs=0))


async def test_a_team_budget_refuses_before_any_provider_call(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    secret, _ = await admin.key(team="frugal")
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="team", subject="frugal", period="month", hard_usd=0.0001)),
        metadata=AUTH,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(secret))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "frugal" in (caught.value.details() or "")
    assert fake.completed == 0


async def test_a_soft_cap_downgrades_to_the_cheaper_model(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    secret, info = await admin.key()
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(
            budget=apb.Budget(scope="key", subject=info.id, period="day", soft_usd=0.0, downgrade_to="cheap")
        ),
        metadata=AUTH,
    )
    response = await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(secret))
    assert response.model == "cheap"
    assert [(g.type, g.action) for g in response.guardrails] == [("budget", "downgrade")]
    assert fake.completed == 0


async def test_usage_groups_by_team_and_forecasts_the_period(running: tuple[Gateway, Admin]) -> None:
    gateway, admin = running
    red, _ = await admin.key(team="red")
    blue, _ = await admin.key(team="blue")
    lead, _ = await admin.key(team="blue", role="team-admin")
    await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(red))
    for _ in range(2):
        await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(blue))
    await gateway.audit.flush()
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="team", forecast_period="day"), metadata=AUTH)
    assert [(r.group, r.requests) for r in usage.rows] == [("blue", 2), ("red", 1)]
    assert usage.rows[0].cost_usd == pytest.approx(2 * usage.rows[1].cost_usd)
    assert usage.forecast.period == "day"
    assert usage.forecast.spent_usd == pytest.approx(usage.total.cost_usd)
    assert usage.forecast.forecast_usd >= usage.forecast.spent_usd
    scoped = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="team"), metadata=bearer(lead))
    assert [r.group for r in scoped.rows] == ["blue"]
    past = await admin.admin.GetUsage(
        apb.GetUsageRequest(since=stamp(time.time() - 7200), until=stamp(time.time() - 3600)), metadata=AUTH
    )
    assert not past.rows


async def test_bad_usage_queries_are_invalid_argument(running: tuple[Gateway, Admin]) -> None:
    _, admin = running
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.admin.GetUsage(apb.GetUsageRequest(group_by="colour"), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.admin.SetBudget(
            apb.SetBudgetRequest(budget=apb.Budget(scope="team", subject="alpha", soft_usd=1)), metadata=AUTH
        )
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


async def test_a_stream_cut_short_by_the_caller_is_billed_for_what_went_out(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    gateway, admin = running
    secret, info = await admin.key()
    fake.default_answer = Answer(text="one two three four five six seven eight", prompt_tokens=13, completion_tokens=9)
    gate = fake.pause_after(4)
    call = admin.gateway.ChatStream(chat_request("gpt"), metadata=bearer(secret))
    received = []
    async for chunk in call:
        received.append(chunk.delta)
        if len("".join(received).split()) >= 2:
            break
    call.cancel()
    gate.set()
    deadline = time.monotonic() + 5
    while True:
        await gateway.audit.flush()
        records = (await admin.admin.QueryAudit(apb.QueryAuditRequest(key_id=info.id), metadata=AUTH)).records
        if records:
            break
        assert time.monotonic() < deadline, "the cancelled stream left no audit record"
        await asyncio.sleep(0.05)
    [record] = records
    assert record.status == "CANCELLED"
    assert record.provider == "openai"
    assert record.completion_tokens >= 2
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="key", key_id=info.id), metadata=AUTH)
    assert usage.total.completion_tokens == record.completion_tokens
    assert usage.total.cost_usd == pytest.approx(record.cost_usd)
    assert usage.total.cost_usd > 0
