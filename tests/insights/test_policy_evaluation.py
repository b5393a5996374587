"""`Insights.EvaluatePolicy` on a synthetic log written into a running gateway's audit log and feedback table, whose
true values are known, and on calls that really ran."""

from __future__ import annotations

import random
import time

import grpc
import pytest
from google.protobuf import timestamp_pb2
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.records.audit import AuditRecord
from gateway.server.app import Gateway
from gateway.store.feedback import FeedbackStore, Rating
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 8}}
models:
  - {name: cheap, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1}
  - {name: mid, provider: sim, input_cost_per_mtok: 3, output_cost_per_mtok: 3}
  - {name: dear, provider: sim, input_cost_per_mtok: 10, output_cost_per_mtok: 10}
feedback:
  metrics: [{name: stars, type: float, min: 1, max: 5}]
routes:
  - name: smart
    strategy: learned
    targets: [{model: cheap}, {model: mid}, {model: dear}]
    learned: {quality: stars, cost_weight: 10, exploration: 0.02, min_feedback: 10}
"""
# Per query type: the chance of a good answer (5 stars; else 1) per model, and the logging policy's propensities.
GOOD = {"a": {"cheap": 0.9, "mid": 0.5}, "b": {"cheap": 0.2, "mid": 0.8}}
LOGGING = {"a": {"cheap": 0.7, "mid": 0.3, "dear": 0.0}, "b": {"cheap": 0.2, "mid": 0.8, "dear": 0.0}}
COST = {"cheap": 0.001, "mid": 0.003}
CALLS = 2000


async def write_log(gateway: Gateway, seed: int, team: str) -> None:
    rng = random.Random(seed)
    now = time.time() - 3600
    records, ratings = [], []
    for i in range(CALLS):
        kind = "a" if i % 2 else "b"
        arms, weights = zip(*LOGGING[kind].items(), strict=True)
        arm = rng.choices(arms, weights)[0]
        request_id = f"{team}{seed:04d}{i:08d}".ljust(24, "0")
        decision = {"query_type": kind, "model": arm, "probabilities": LOGGING[kind], "explored": False, "cold": False}
        records.append(
            AuditRecord(
                request_id,
                now + i * 0.01,
                key_id="k",
                team=team,
                model="smart",
                route="smart",
                served_model=arm,
                provider="sim",
                latency_ms=100.0,
                prompt_tokens=10,
                completion_tokens=5,
                cost_usd=COST[arm],
                learned=decision,
            )
        )
        stars = 5.0 if rng.random() < GOOD[kind][arm] else 1.0
        ratings.append(Rating(request_id, "stars", "evaluator", stars, "", "", "k", team, now + i * 0.01))
    await gateway.ledger.write(records, with_audit=True)
    store = FeedbackStore(gateway.engine)
    for rating in ratings:
        await store.put(rating)


def true_objective(policy: dict[str, dict[str, float]]) -> float:
    return sum(p * (GOOD[k][arm] - 10 * COST[arm]) for k in "ab" for arm, p in policy[k].items()) / 2


async def test_estimates_hold_the_true_values_and_flag_what_was_never_explored(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG)
    await write_log(gateway, seed=7, team="lab")
    insights = insights_pb2_grpc.InsightsStub(channel)
    response = await insights.EvaluatePolicy(pb.EvaluatePolicyRequest(route="smart"), metadata=AUTH)
    assert response.rated_calls == CALLS
    policies = {p.policy: p for p in response.policies}
    assert list(policies) == ["logged", "learned", "cheap", "mid", "dear"]
    for name, policy in (
        ("logged", {k: {a: p for a, p in LOGGING[k].items() if p} for k in "ab"}),
        ("cheap", {k: {"cheap": 1.0} for k in "ab"}),
        ("mid", {k: {"mid": 1.0} for k in "ab"}),
    ):
        found = policies[name]
        assert found.estimable, name
        assert found.objective.low <= true_objective(policy) <= found.objective.high, name
        assert found.objective.high - found.objective.low < 0.15, name
    assert policies["mid"].cost_usd.value == pytest.approx(COST["mid"], rel=0.05)
    assert policies["cheap"].quality.low <= 0.55 <= policies["cheap"].quality.high
    # No profiles yet, so the learned strategy is in cold start: cheap, with 2% of the calls elsewhere (half to dear,
    # which was never explored: 99% of its picks are supported).
    assert policies["learned"].support == pytest.approx(0.99)
    assert policies["learned"].estimable
    dear = policies["dear"]
    assert not dear.estimable
    assert not dear.HasField("objective")
    assert dear.matched == 0
    assert "never picked" in dear.reason


async def test_who_may_evaluate_and_refusals(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG)
    admin = Admin.on(channel)
    insights = insights_pb2_grpc.InsightsStub(channel)
    await write_log(gateway, seed=1, team="lab")
    lead, _ = await admin.key(team="other", role="team-admin")
    member, _ = await admin.key(team="lab")
    # A team admin reads its own team's calls only: none here.
    mine = await insights.EvaluatePolicy(pb.EvaluatePolicyRequest(route="smart"), metadata=bearer(lead))
    assert mine.rated_calls == 0
    assert all(not p.estimable and p.reason == "no logged call has feedback" for p in mine.policies)

    async def refused(request: pb.EvaluatePolicyRequest, metadata: tuple[tuple[str, str], ...]) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await insights.EvaluatePolicy(request, metadata=metadata)
        return caught.value

    error = await refused(pb.EvaluatePolicyRequest(route="smart"), bearer(member))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    error = await refused(pb.EvaluatePolicyRequest(route="cheap"), AUTH)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert reason_of(error) == "UNKNOWN_ROUTE"
    assert "learned routes: smart" in error.details()
    later = timestamp_pb2.Timestamp(seconds=int(time.time()))
    earlier = timestamp_pb2.Timestamp(seconds=int(time.time()) - 60)
    error = await refused(pb.EvaluatePolicyRequest(route="smart", since=later, until=earlier), AUTH)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(error) == "BAD_RANGE"


async def test_calls_that_ran_are_evaluated(start_gateway: StartGateway) -> None:
    """Decisions logged by the route itself, rated through Feedback, come back as evidence."""
    _, channel = await start_gateway(CONFIG)
    admin = Admin.on(channel)
    insights = insights_pb2_grpc.InsightsStub(channel)
    secret, _ = await admin.key(team="lab")
    for i in range(12):
        call = await admin.gateway.Chat(chat_request("smart", text=f"Name a river {i}"), metadata=bearer(secret))
        rating = pb.MetricRating(metric="stars", score=5 if call.model == "cheap" else 2)
        await insights.Feedback(pb.FeedbackRequest(request_id=call.id, ratings=[rating]), metadata=bearer(secret))
    response = await insights.EvaluatePolicy(pb.EvaluatePolicyRequest(route="smart"), metadata=AUTH)
    assert response.rated_calls == 12
    logged = response.policies[0]
    assert logged.policy == "logged"
    assert logged.estimable
    assert logged.support == pytest.approx(1.0)
    assert logged.matched == 12
