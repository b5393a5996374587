"""`GetAnalytics` relationships and cheaper models, on a synthetic log in a running gateway's database whose
associations are known."""

from __future__ import annotations

import random
import time

import grpc
import pytest
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc

from gateway.records.audit import AuditRecord
from gateway.server.app import Gateway
from gateway.store.feedback import FeedbackStore, Rating
from gateway.store.shadow import ShadowCall, ShadowStore
from tests.admin.helpers import reason_of
from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 8}}
models:
  - {name: cheap, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1}
  - {name: dear, provider: sim, input_cost_per_mtok: 10, output_cost_per_mtok: 10}
feedback:
  metrics: [{name: thumbs, type: boolean}, {name: stars, type: float, min: 1, max: 5}]
routes:
  - name: smart
    strategy: learned
    targets: [{model: cheap}, {model: dear}]
    learned: {quality: thumbs}
"""
GOOD = {("code", "cheap"): 0.9, ("code", "dear"): 0.9, ("math", "cheap"): 0.2, ("math", "dear"): 0.95}


async def write_log(gateway: Gateway) -> None:
    """cheap and dear each serve 300 calls of code and of math, rated; dear also serves 60 unrated summaries, each
    copied to cheap with a similar answer. dear's latency grows with the prompt."""
    rng = random.Random(5)
    at = time.time() - 3600
    records, ratings, copies = [], [], []
    for i in range(1260):
        kind, model = [("code", "cheap"), ("code", "dear"), ("math", "cheap"), ("math", "dear")][i % 4]
        if i >= 1200:
            kind, model = "summaries", "dear"
        tokens = rng.choice([20, 200])
        request_id = f"{i:024x}"
        records.append(
            AuditRecord(
                request_id, at + i * 0.01, key_id="k", team="lab", model="smart", route="smart", served_model=model,
                provider="sim", latency_ms=tokens * (10 if model == "dear" else 1) + rng.gauss(0, 20),
                prompt_tokens=tokens, completion_tokens=10, cost_usd=0.01 if model == "dear" else 0.001,
                learned={"query_type": f"{kind} lang=en", "model": model, "probabilities": {model: 1.0}},
            )
        )  # fmt: skip
        if kind == "summaries":
            copies.append(
                ShadowCall(
                    request_id, at, "smart", "lab", "dear", "cheap", f"{i + 5000:024x}", "OK", True, "",
                    100.0, 50.0, 0.01, 0.001, rng.uniform(0.85, 0.95),
                )
            )  # fmt: skip
        else:
            good = rng.random() < GOOD[kind, model]
            ratings.append(Rating(request_id, "thumbs", "end_user", float(good), "", "", "k", "lab", at))
    await gateway.ledger.write(records, with_audit=True)
    feedback = FeedbackStore(gateway.engine)
    for rating in ratings:
        await feedback.put(rating)
    shadows = ShadowStore(gateway.engine)
    for copy in copies:
        await shadows.add(copy)


async def test_relationships_and_cheaper_models_from_the_log(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG)
    await write_log(gateway)
    insights = insights_pb2_grpc.InsightsStub(channel)
    response = await insights.GetAnalytics(pb.GetAnalyticsRequest(), metadata=AUTH)
    assert response.analysed_calls == 1260
    assert response.quality_metric == "thumbs"
    found = {(r.model, r.feature, r.outcome): r for r in response.relationships}
    # dear's latency follows the prompt's length; its quality follows the query type (code 0.9, math 0.95: small).
    assert found["dear", "prompt_tokens", "latency_ms"].eta_squared > 0.9
    cheap_quality = found["cheap", "query_type", "quality"]
    assert cheap_quality.eta_squared > 0.3  # code 0.9 against math 0.2
    assert {g.value: g.calls for g in cheap_quality.groups} == {"code lang=en": 300, "math lang=en": 300}
    assert ("cheap", "language", "quality") not in found  # one language: nothing to compare
    cheaper = {a.query_type: a for a in response.cheaper}
    assert set(cheaper) == {"code lang=en", "math lang=en", "summaries lang=en"}
    assert (cheaper["code lang=en"].basis, cheaper["code lang=en"].as_well) == ("feedback", True)
    assert (cheaper["math lang=en"].basis, cheaper["math lang=en"].as_well) == ("feedback", False)
    assert (cheaper["summaries lang=en"].basis, cheaper["summaries lang=en"].as_well) == ("shadow", True)
    assert cheaper["code lang=en"].cost_ratio == pytest.approx(0.1)
    # dear's code (300) and summaries (60) of 1260 typed calls, at a tenth of the cost.
    assert response.share_handled_by_cheaper == pytest.approx(360 / 1260)
    assert response.cheaper_saving_usd == pytest.approx(360 * 0.01 * 0.9)
    # Another metric: nobody rated on it, so no quality relationship and no feedback basis.
    stars = await insights.GetAnalytics(pb.GetAnalyticsRequest(quality_metric="stars"), metadata=AUTH)
    assert not [r for r in stars.relationships if r.outcome == "quality"]
    assert [a.basis for a in stars.cheaper] == ["shadow"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await insights.GetAnalytics(pb.GetAnalyticsRequest(quality_metric="speed"), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "UNKNOWN_METRIC"
    other = await insights.GetAnalytics(pb.GetAnalyticsRequest(team="other"), metadata=AUTH)
    assert other.analysed_calls == 0
    assert not other.relationships
