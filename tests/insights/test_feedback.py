"""Feedback on calls, the profiles it feeds and the learned strategy, through the gRPC API of a running gateway."""

from __future__ import annotations

import time

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as gpb
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

# `bad` answers badly every time and `good` well, on every prompt: a learned route must come to prefer `good`.
CONFIG = """
providers:
  - name: sim
    type: simulated
    simulation:
      max_answer_tokens: 8
      seed: 3
      quality: [{prompt_regex: ".", good: {bad: 0.0, good: 1.0}}]
models:
  - {name: bad, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1, capabilities: [streaming]}
  - {name: good, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1}
feedback:
  metrics:
    - {name: thumbs, type: boolean}
    - {name: stars, type: float, min: 1, max: 5}
    - {name: verdict, type: label, labels: {right: 1.0, partly: 0.5, wrong: 0.0}}
routes:
  - name: smart
    strategy: learned
    targets: [{model: bad}, {model: good}]
    learned: {quality: thumbs, exploration: 0.2, min_feedback: 10, half_life_s: 86400}
"""


@pytest.fixture
async def running(start_gateway: StartGateway) -> tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub]:
    gateway, channel = await start_gateway(CONFIG)
    return gateway, Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)


def thumbs(up: bool) -> pb.MetricRating:
    return pb.MetricRating(metric="thumbs", boolean=up)


async def test_a_learned_route_says_how_it_chose(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    _, admin, _ = running
    secret, _ = await admin.key(team="lab")
    answer = await admin.gateway.Chat(chat_request("smart", text="Le chat est sur la table"), metadata=bearer(secret))
    learned = answer.route.learned
    assert answer.route.strategy == "learned"
    assert learned.query_type == "tokens<64 lang=fr"
    assert learned.cold_start
    assert [arm.model for arm in learned.arms] == ["bad", "good"]
    assert sum(arm.probability for arm in learned.arms) == pytest.approx(1.0)
    assert learned.arms[0].probability == pytest.approx(0.8)  # cold start: configured order, 20% exploring
    assert learned.model == answer.model
    assert learned.explored == (answer.model != "bad")
    # `bad` has no tools capability: a call with tools never goes there, nor counts it as an arm.
    tools = chat_request("smart", text="What is the weather?")
    tools.tools.add(name="weather", description="today's weather", parameters_json="{}")
    answer = await admin.gateway.Chat(tools, metadata=bearer(secret))
    assert [arm.model for arm in answer.route.learned.arms] == ["good"]
    assert answer.route.learned.query_type == "tokens<64 lang=en tools"
    assert answer.model == "good"


async def test_feedback_is_stored_once_per_call_metric_and_source(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    _, admin, insights = running
    secret, _ = await admin.key(team="lab")
    call = await admin.gateway.Chat(chat_request("smart", text="Name a river"), metadata=bearer(secret))
    request = pb.FeedbackRequest(
        request_id=call.id,
        ratings=[
            thumbs(True),
            pb.MetricRating(metric="stars", score=4),
            pb.MetricRating(metric="verdict", label="partly"),
        ],
        comment="fine",
        source=pb.FEEDBACK_SOURCE_END_USER,
    )
    first = await insights.Feedback(request, metadata=bearer(secret))
    assert [(r.metric, r.replaced, r.quality) for r in first.recorded] == [
        ("thumbs", False, 1.0),
        ("stars", False, 0.75),
        ("verdict", False, 0.5),
    ]
    # The same source again replaces its rating; another source adds its own.
    again = await insights.Feedback(
        pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(False)], source=pb.FEEDBACK_SOURCE_END_USER),
        metadata=bearer(secret),
    )
    assert [(r.replaced, r.quality) for r in again.recorded] == [(True, 0.0)]
    evaluator = await insights.Feedback(
        pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(True)], source=pb.FEEDBACK_SOURCE_EVALUATOR),
        metadata=bearer(secret),
    )
    assert not evaluator.recorded[0].replaced
    profiles = await insights.GetProfiles(pb.GetProfilesRequest(route="smart"), metadata=AUTH)
    [profile] = [p for p in profiles.profiles if p.model == call.model]
    assert profile.query_type == call.route.learned.query_type
    assert profile.calls == pytest.approx(1.0, rel=1e-3)
    # Two ratings of the quality metric (end user, now down, and evaluator, up): the replaced one counts once.
    assert profile.feedback == pytest.approx(2.0, rel=1e-3)
    assert profile.quality == pytest.approx(0.5, rel=1e-3)
    assert profile.HasField("quality_sd")
    assert profile.error_rate == 0.0
    assert profile.latency_p50_s > 0
    assert profile.cost_usd == pytest.approx(call.usage.cost_usd, rel=1e-3)


async def test_feedback_refusals(running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub]) -> None:
    _, admin, insights = running
    owner, _ = await admin.key(team="lab")
    neighbour, _ = await admin.key(team="lab")
    lead, _ = await admin.key(team="lab", role="team-admin")
    stranger, _ = await admin.key(team="other", role="team-admin")
    call = await admin.gateway.Chat(chat_request("smart"), metadata=bearer(owner))

    async def refused(key: str, request: pb.FeedbackRequest) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await insights.Feedback(request, metadata=bearer(key))
        return caught.value

    up = pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(True)])
    error = await refused(neighbour, up)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(error) == "NOT_YOUR_CALL"
    error = await refused(stranger, up)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert (await insights.Feedback(up, metadata=bearer(lead))).recorded[0].metric == "thumbs"  # its team's call
    error = await refused(owner, pb.FeedbackRequest(request_id="000000000000ffffffffffff", ratings=[thumbs(True)]))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    for rating, reason in (
        (pb.MetricRating(metric="speed", boolean=True), "UNKNOWN_METRIC"),
        (pb.MetricRating(metric="stars", score=6), "RATING_OUT_OF_RANGE"),
        (pb.MetricRating(metric="stars", boolean=True), "RATING_TYPE_MISMATCH"),
        (pb.MetricRating(metric="verdict", label="maybe"), "UNKNOWN_LABEL"),
    ):
        error = await refused(
            owner,
            pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(True), rating], source=pb.FEEDBACK_SOURCE_END_USER),
        )
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, rating
        assert reason_of(error) == reason
        assert rating.metric in (error.details() or "")
    # Nothing of a refused request was stored: the end user's first valid rating is not a replacement.
    first = await insights.Feedback(
        pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(True)], source=pb.FEEDBACK_SOURCE_END_USER),
        metadata=bearer(owner),
    )
    assert not first.recorded[0].replaced
    error = await refused(owner, pb.FeedbackRequest(request_id=call.id))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.GetProfiles(pb.GetProfilesRequest(), metadata=bearer(owner))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_the_learned_route_comes_to_prefer_the_model_rated_well(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    _, admin, insights = running
    secret, _ = await admin.key(team="lab")
    served = []
    for number in range(50):
        call = await admin.gateway.Chat(chat_request("smart", text=f"Question {number}?"), metadata=bearer(secret))
        good = call.message.content.startswith(f"[simulated {call.model}: good answer]")
        await insights.Feedback(pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(good)]), metadata=bearer(secret))
        served.append((call.model, call.route.learned.cold_start))
    assert served[0][1]  # cold start
    assert not served[-1][1]  # out of cold start after 10 ratings
    # `bad` is rated down every time: once learned, it gets no more than the bounded exploration.
    assert [model for model, _ in served[-20:]].count("good") >= 17
    profiles = await insights.GetProfiles(pb.GetProfilesRequest(route="smart"), metadata=AUTH)
    quality = {p.model: p.quality for p in profiles.profiles}
    assert quality["bad"] == 0.0
    assert quality["good"] == 1.0


async def test_a_stream_answers_with_the_route_info_too(
    running: tuple[Gateway, Admin, insights_pb2_grpc.InsightsStub],
) -> None:
    _, admin, _ = running
    secret, _ = await admin.key(team="lab")
    chunks = [c async for c in admin.gateway.ChatStream(chat_request("smart"), metadata=bearer(secret))]
    final = chunks[-1]
    assert isinstance(final, gpb.ChatChunk)
    assert final.route.learned.query_type


async def test_instances_on_one_database_share_the_profiles(start_gateway: StartGateway) -> None:
    first, channel = await start_gateway(CONFIG)
    _, other = await start_gateway(CONFIG)  # the same state folder: the same SQLite database
    admin = Admin.on(channel)
    secret, _ = await admin.key(team="lab")
    call = await admin.gateway.Chat(chat_request("smart", text="Which river is longest?"), metadata=bearer(secret))
    await insights_pb2_grpc.InsightsStub(channel).Feedback(
        pb.FeedbackRequest(request_id=call.id, ratings=[thumbs(True)]), metadata=bearer(secret)
    )
    assert first.feedback is not None
    await first.feedback.profiles.sync(time.time())  # what its timer does every second
    seen = await insights_pb2_grpc.InsightsStub(other).GetProfiles(pb.GetProfilesRequest(route="smart"), metadata=AUTH)
    [profile] = seen.profiles
    assert (profile.model, profile.query_type) == (call.model, call.route.learned.query_type)
    assert profile.calls == pytest.approx(1.0, rel=1e-3)
    assert profile.feedback == pytest.approx(1.0, rel=1e-3)
