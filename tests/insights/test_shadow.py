"""Shadow traffic through a running gateway against fake OpenAI servers: the caller gets only the primary's answer,
the copy obeys the primary's policies, spends its own budget, and `GetAnalytics` summarizes it."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.records.audit import AuditFilter
from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.server.fixtures import AUTH, StartGateway

EMAIL = "jane.doe@example.com"


def config(eu: FakeOpenAI, us: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: eu, type: openai, base_url: '{eu.url}', api_key_env: {eu.key_env}, region: eu}}
  - {{name: us, type: openai, base_url: '{us.url}', api_key_env: {us.key_env}, region: us}}
models:
  - {{name: main, provider: eu, upstream_model: gpt-4o, input_cost_per_mtok: 10, output_cost_per_mtok: 10}}
  - {{name: candidate, provider: eu, upstream_model: gpt-4o-mini, input_cost_per_mtok: 1, output_cost_per_mtok: 1}}
  - {{name: far, provider: us, upstream_model: gpt-4o}}
guardrails:
  input: {{pii: {{default: redact}}}}
residency:
  classifications:
    restricted: {{regions: [eu]}}
routes:
  - name: mirrored
    targets: [{{model: main}}]
    shadow: {{model: candidate, share: 1.0, max_usd_per_day: 1.0}}
  - name: abroad
    targets: [{{model: main}}]
    shadow: {{model: far, share: 1.0, max_usd_per_day: 1.0}}
  - name: frugal
    targets: [{{model: main}}]
    shadow: {{model: candidate, share: 1.0, max_usd_per_day: 0.00001}}
"""


@pytest.fixture
async def fakes(fake_providers: FakeProviders) -> tuple[FakeOpenAI, FakeOpenAI]:
    return await fake_providers.start("openai"), await fake_providers.start("openai")


@pytest.fixture
async def running(
    start_gateway: StartGateway, fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub]:
    gateway, channel = await start_gateway(config(*fakes))
    return gateway, Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)


async def shadows(
    gateway: Gateway, insights: insights_pb2_grpc.InsightsStub, route: str, metadata: tuple[tuple[str, str], ...] = AUTH
) -> list[pb.ShadowSummary]:
    assert gateway.shadow is not None
    await gateway.shadow.drain()
    response = await insights.GetAnalytics(pb.GetAnalyticsRequest(route=route), metadata=metadata)
    return list(response.shadows)


async def test_the_caller_gets_the_primary_and_the_copy_is_compared_and_billed_apart(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub], fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    gateway, admin, insights = running
    eu, _ = fakes
    await admin.team("lab", body_policy="full")
    secret, key = await admin.key(team="lab")
    eu.reply("The capital of France is Paris", prompt_tokens=100, completion_tokens=100)
    eu.reply("Paris is the French capital", prompt_tokens=100, completion_tokens=50)
    answer = await admin.gateway.Chat(
        chat_request("mirrored", text=f"Capital of France? {EMAIL}"), metadata=bearer(secret)
    )
    assert answer.model == "main"
    assert answer.message.content == "The capital of France is Paris"
    [summary] = await shadows(gateway, insights, "mirrored")
    assert (summary.primary_model, summary.shadow_model) == ("main", "candidate")
    assert (summary.mirrored, summary.answered, summary.failed, summary.refused, summary.over_budget) == (1, 1, 0, 0, 0)
    assert summary.mean_similarity == pytest.approx(4 / 30**0.5)  # four words shared, of six and five
    assert summary.primary_cost_usd == pytest.approx(200 * 10 / 1e6)
    assert summary.shadow_cost_usd == pytest.approx(150 * 1 / 1e6)
    assert summary.primary_latency_ms > 0
    assert summary.shadow_latency_ms > 0
    # A streamed call is copied alike.
    chunks = [c async for c in admin.gateway.ChatStream(chat_request("mirrored"), metadata=bearer(secret))]
    assert chunks
    [summary] = await shadows(gateway, insights, "mirrored")
    assert summary.answered == 2
    # The copy went out after the primary, as the primary's provider saw the request: redacted.
    primary_sent, shadow_sent = eu.requests[0], eu.requests[1]
    assert primary_sent.body["model"] == "gpt-4o"
    assert shadow_sent.body["model"] == "gpt-4o-mini"
    assert EMAIL not in str(shadow_sent.body["messages"])
    assert shadow_sent.body["messages"] == primary_sent.body["messages"]
    # Audited as kind shadow, with the answer as the team's body policy keeps it...
    await gateway.audit.flush()
    [record, _] = [r for r in await gateway.ledger.query_audit(AuditFilter(team="lab")) if r.kind == "shadow"][::-1]
    assert record.served_model == "candidate"
    assert record.key_id == key.id
    assert record.response_body == "Paris is the French capital"
    # ...and billed to no key's or team's usage: the key's spend is the primary's alone.
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="key", key_id=key.id), metadata=AUTH)
    assert usage.total.requests == 2
    assert usage.total.cost_usd == pytest.approx(answer.usage.cost_usd + (13 + 9) * 10 / 1e6)  # the fake's default


async def test_a_copy_the_policies_forbid_is_not_sent(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub], fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    gateway, admin, insights = running
    eu, us = fakes
    # The key may not call the shadow model.
    narrow, _ = await admin.key(team="lab", models=["mirrored"])
    await admin.gateway.Chat(chat_request("mirrored"), metadata=bearer(narrow))
    [summary] = await shadows(gateway, insights, "mirrored")
    assert (summary.mirrored, summary.refused) == (0, 1)
    assert len(eu.requests) == 1
    # Restricted data stays in the eu: the primary answers there, the us copy is not sent; public data is copied.
    secret, _ = await admin.key(team="lab")
    restricted = (*bearer(secret), ("x-data-classification", "restricted"))
    await admin.gateway.Chat(chat_request("abroad"), metadata=restricted)
    [summary] = await shadows(gateway, insights, "abroad")
    assert (summary.mirrored, summary.refused) == (0, 1)
    assert not us.requests, "restricted data went to a region its policy excludes"
    # The caller does not wait for the copy: a slow shadow is still under way when the caller has its answer.
    us.slow(first_byte_delay=1.0)
    await admin.gateway.Chat(chat_request("abroad"), metadata=bearer(secret))
    pending = await insights.GetAnalytics(pb.GetAnalyticsRequest(route="abroad"), metadata=AUTH)
    assert [s.mirrored for s in pending.shadows] == [0]
    [summary] = await shadows(gateway, insights, "abroad")
    assert (summary.mirrored, summary.answered, summary.refused) == (1, 1, 1)
    assert len(us.requests) == 1
    # A call the primary failed is not copied.
    eu.fail(400, times=1)
    with pytest.raises(grpc.aio.AioRpcError):
        await admin.gateway.Chat(chat_request("mirrored"), metadata=bearer(secret))
    [summary] = await shadows(gateway, insights, "mirrored")
    assert summary.mirrored + summary.refused + summary.over_budget == 1


async def test_the_shadow_stops_at_its_daily_budget(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub], fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    gateway, admin, insights = running
    eu, _ = fakes
    secret, _ = await admin.key(team="lab")
    for _ in range(3):
        await admin.gateway.Chat(chat_request("frugal"), metadata=bearer(secret))
        assert gateway.shadow is not None
        await gateway.shadow.drain()
    [summary] = await shadows(gateway, insights, "frugal")
    # The first copy (13 + 9 tokens at $1 per million) spends the day's $0.00001; the others are not sent.
    assert (summary.mirrored, summary.over_budget) == (1, 2)
    assert len(eu.requests) == 4


async def test_a_team_admin_sees_its_own_teams_copies(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    gateway, admin, insights = running
    mine, _ = await admin.key(team="lab")
    theirs, _ = await admin.key(team="other")
    lead, _ = await admin.key(team="lab", role="team-admin")
    await admin.gateway.Chat(chat_request("mirrored"), metadata=bearer(mine))
    await admin.gateway.Chat(chat_request("mirrored"), metadata=bearer(theirs))
    # A comparison run by hand is not a caller's call: not copied.
    compared = await insights.Compare(pb.CompareRequest(request=chat_request(), targets=["mirrored"]), metadata=AUTH)
    assert compared.results[0].response.model == "main"
    [everyone] = await shadows(gateway, insights, "mirrored")
    assert everyone.answered == 2
    [lab] = await shadows(gateway, insights, "mirrored", bearer(lead))
    assert lab.answered == 1


async def test_at_most_four_copies_of_a_route_run_at_once(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub], fakes: tuple[FakeOpenAI, FakeOpenAI]
) -> None:
    gateway, admin, insights = running
    _, us = fakes
    us.slow(first_byte_delay=0.5, times=6)
    secret, _ = await admin.key(team="lab")
    await asyncio.gather(*(admin.gateway.Chat(chat_request("abroad"), metadata=bearer(secret)) for _ in range(6)))
    [summary] = await shadows(gateway, insights, "abroad")
    assert summary.mirrored + summary.busy == 6
    assert summary.mirrored <= 4
    assert len(us.requests) == summary.mirrored
