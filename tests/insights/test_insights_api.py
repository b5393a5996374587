"""Insights through the API: Replay of an audited call and Compare across targets, each a real, audited call."""

from __future__ import annotations

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import gateway_pb2 as gpb
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.insights.similarity import word_cosine
from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 24}}
  - {name: sim-broken, type: simulated, simulation: {error_rate: 1.0}}
models:
  - {name: small, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 2}
  - {name: large, provider: sim, input_cost_per_mtok: 10, output_cost_per_mtok: 20}
  - {name: broken, provider: sim-broken}
teams:
  - {name: lab, bodies: full}
"""


@pytest.fixture
async def running(start_gateway: StartGateway) -> tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub]:
    gateway, channel = await start_gateway(CONFIG)
    return gateway, Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)


def test_word_cosine() -> None:
    assert word_cosine("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert word_cosine("the cat sat", "dogs run fast") == 0.0
    assert 0 < word_cosine("the cat sat on the mat", "the dog sat on the rug") < 1
    assert word_cosine("", "") == 1.0


async def test_compare_answers_side_by_side_and_audits_each(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    gateway, admin, insights = running
    request = pb.CompareRequest(
        request=gpb.ChatRequest(messages=[gpb.Message(role="user", content="Name three rivers")]),
        targets=["small", "large", "broken"],
    )
    response = await insights.Compare(request, metadata=AUTH)
    assert [r.target for r in response.results] == ["small", "large", "broken"]
    small, large, broken = response.results
    assert small.response.model == "small"
    assert large.response.model == "large"
    assert small.response.message.content
    assert large.response.usage.cost_usd > small.response.usage.cost_usd
    assert small.latency_ms > 0
    assert 0 < small.time_to_first_chunk_ms <= small.latency_ms
    assert broken.error.code == "UNAVAILABLE"
    assert broken.error.reason == "SIMULATED_FAILURE"
    assert not broken.HasField("response")
    [pair] = response.similarities
    assert (pair.a, pair.b) == ("small", "large")
    assert pair.score == pytest.approx(word_cosine(small.response.message.content, large.response.message.content))
    await gateway.audit.flush()
    audited = await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=10), metadata=AUTH)
    assert sorted(r.kind for r in audited.records) == ["compare", "compare", "compare"]


async def test_replay_runs_an_audited_call_again_on_another_model(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    gateway, admin, insights = running
    secret, _ = await admin.key(team="lab")
    first = await admin.gateway.Chat(
        chat_request("small", text="Explain tides", max_tokens=20), metadata=bearer(secret)
    )
    replay = await insights.Replay(
        pb.ReplayRequest(request_id=first.id, target="large", overrides=pb.ParameterOverrides(temperature=0.2)),
        metadata=AUTH,
    )
    assert replay.original.id == first.id
    assert replay.original.message.content == first.message.content
    assert replay.original.usage.cost_usd == pytest.approx(first.usage.cost_usd)
    assert replay.replayed.model == "large"
    assert replay.replayed.id != first.id
    assert 0.0 <= replay.similarity <= 1.0
    assert replay.original_latency_ms > 0
    assert replay.replayed_latency_ms > 0
    again = await insights.Replay(pb.ReplayRequest(request_id=first.id), metadata=AUTH)
    assert again.replayed.model == "small"
    await gateway.audit.flush()
    replays = await admin.admin.QueryAudit(apb.QueryAuditRequest(request_id=again.replayed.id), metadata=AUTH)
    assert replays.records[0].kind == "replay"


async def test_replay_refusals(running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub]) -> None:
    gateway, admin, insights = running
    member, _ = await admin.key(team="quiet")  # a team without stored bodies
    call = await admin.gateway.Chat(chat_request("small"), metadata=bearer(member))
    await gateway.audit.flush()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.Replay(pb.ReplayRequest(request_id=call.id), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "NO_STORED_BODY"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.Replay(pb.ReplayRequest(request_id="000000000000ffffffffffff"), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.Compare(pb.CompareRequest(targets=["small"]), metadata=bearer(member))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    lead, _ = await admin.key(team="other", role="team-admin")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.Replay(pb.ReplayRequest(request_id=call.id), metadata=bearer(lead))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.Compare(
            pb.CompareRequest(request=gpb.ChatRequest(messages=[gpb.Message(role="user", content="x")])),
            metadata=AUTH,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
