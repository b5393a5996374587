"""Time-of-day prices through the Gateway service, on a fake clock: the cost strategy and the bill follow the price
in force when the call runs, the audit record keeps it, and a deferred call waits for a cheaper window."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from llmgateway.v1 import admin_pb2 as apb

from tests.admin.helpers import Admin, chat_request
from tests.fakes import FakeOpenAI
from tests.fakes.server import Answer
from tests.server.fixtures import AUTH, StartGateway

PROMPT, COMPLETION = 1000, 100


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: nightly
    provider: openai
    input_cost_per_mtok: 4.0
    output_cost_per_mtok: 16.0
    prices:
      - {{hours: "16:30-00:30", timezone: UTC, input_cost_per_mtok: 1.0, output_cost_per_mtok: 4.0}}
  - name: steady
    provider: openai
    input_cost_per_mtok: 2.0
    output_cost_per_mtok: 8.0
routes:
  - name: cheapest
    strategy: cost
    targets: [{{model: nightly}}, {{model: steady}}]
"""


@pytest.fixture
async def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.default_answer = Answer(prompt_tokens=PROMPT, completion_tokens=COMPLETION)
    return fake_openai


async def test_the_cost_strategy_and_the_bill_follow_the_price_in_force(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    now = [utc("2026-06-01 12:00")]
    gateway, channel = await start_gateway(config(fake), clock=lambda: now[0])
    admin = Admin.on(channel)
    midday = await admin.gateway.Chat(chat_request("cheapest"), metadata=AUTH)
    assert midday.model == "steady"
    now[0] = utc("2026-06-01 17:00")
    evening = await admin.gateway.Chat(chat_request("cheapest"), metadata=AUTH)
    assert evening.model == "nightly"
    assert evening.usage.cost_usd == pytest.approx((PROMPT * 1.0 + COMPLETION * 4.0) / 1e6, rel=1e-12)
    now[0] = utc("2026-06-02 01:00")
    late = await admin.gateway.Chat(chat_request("nightly"), metadata=AUTH)
    assert late.usage.cost_usd == pytest.approx((PROMPT * 4.0 + COMPLETION * 16.0) / 1e6, rel=1e-12)
    await gateway.audit.flush()
    audit = await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=10), metadata=AUTH)
    by_id = {r.request_id: r for r in audit.records}
    applied = by_id[evening.id].prices
    assert (applied.input_per_mtok, applied.output_per_mtok, applied.window) == (1.0, 4.0, "16:30-00:30 UTC")
    assert not applied.HasField("cached_input_per_mtok")
    assert (by_id[late.id].prices.input_per_mtok, by_id[late.id].prices.window) == (4.0, "")
    assert not by_id[midday.id].HasField("prices")  # steady has no time-of-day prices
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="model"), metadata=AUTH)
    assert usage.total.cost_usd == pytest.approx(midday.usage.cost_usd + evening.usage.cost_usd + late.usage.cost_usd)


async def test_a_deferred_call_waits_for_a_cheaper_window_that_begins_within_its_wait(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    """The clock runs at real speed and reads 16:29:58 when the call is sent; the call may wait 10 s, so it goes at
    16:30, two seconds on (the gateway's start-up, however slow, is before the clock is set)."""
    offset = [0.0]
    gateway, channel = await start_gateway(config(fake), clock=lambda: time.time() + offset[0])
    admin = Admin.on(channel)
    request = chat_request("nightly", defer_up_to_s=10.0)
    offset[0] = utc("2026-06-01 16:29:58") - time.time()
    response = await admin.gateway.Chat(request, metadata=AUTH)
    assert response.usage.cost_usd == pytest.approx((PROMPT * 1.0 + COMPLETION * 4.0) / 1e6, rel=1e-12)
    await gateway.audit.flush()
    [record] = (await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=1), metadata=AUTH)).records
    assert record.deferred.waited_for_window == "16:30-00:30 UTC"
    assert record.prices.window == "16:30-00:30 UTC"
    assert record.deferred.held_ms > 0
    # Sent at once it would have paid the day price: the saving shows in the usage report.
    assert record.deferred.interactive_usd == pytest.approx((PROMPT * 4.0 + COMPLETION * 16.0) / 1e6, rel=1e-12)


async def test_a_deferred_call_whose_wait_ends_before_the_window_goes_at_the_day_price(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    now = utc("2026-06-01 16:00")
    _, channel = await start_gateway(config(fake), clock=lambda: now)
    admin = Admin.on(channel)
    response = await admin.gateway.Chat(chat_request("nightly", defer_up_to_s=0.2), metadata=AUTH)
    assert response.usage.cost_usd == pytest.approx((PROMPT * 4.0 + COMPLETION * 16.0) / 1e6, rel=1e-12)
