"""POST /v1/feedback on the OpenAI-compatible front door: rating a call by the x-request-id its answer carried, with
Insights.Feedback's authorization and errors, in OpenAI's error body."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from llmgateway.v1 import insights_pb2 as pb
from llmgateway.v1 import insights_pb2_grpc
from multidict import CIMultiDict

from gateway.server.app import Gateway
from tests.admin.helpers import Admin
from tests.insights.test_feedback import CONFIG
from tests.server.fixtures import AUTH, StartGateway


async def post(gateway: Gateway, path: str, body: dict[str, Any], key: str) -> tuple[int, CIMultiDict[str], Any]:
    assert gateway.http is not None
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{gateway.http.port}{path}", json=body, headers={"authorization": f"Bearer {key}"}
        ) as response,
    ):
        return response.status, response.headers.copy(), await response.json(content_type=None)


async def test_rate_a_call_over_http(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    owner, _ = await admin.key(team="lab")
    stranger, _ = await admin.key(team="lab")
    chat = {"model": "smart", "messages": [{"role": "user", "content": "Name a river"}]}
    status, headers, _ = await post(gateway, "/v1/chat/completions", chat, owner)
    assert status == 200
    call_id = headers["x-request-id"]
    ratings = [
        {"metric": "thumbs", "boolean": True},
        {"metric": "stars", "score": 4},
        {"metric": "verdict", "label": "right"},
    ]
    body = {"request_id": call_id, "ratings": ratings, "comment": "fine", "source": "end_user"}
    status, _, answer = await post(gateway, "/v1/feedback", body, owner)
    assert status == 200, answer
    assert answer == {
        "recorded": [
            {"metric": "thumbs", "replaced": False, "quality": 1.0},
            {"metric": "stars", "replaced": False, "quality": 0.75},
            {"metric": "verdict", "replaced": False, "quality": 1.0},
        ]
    }
    status, _, answer = await post(gateway, "/v1/feedback", {**body, "ratings": ratings[:1]}, owner)
    assert answer["recorded"][0]["replaced"] is True
    # The rating reached the learned route's profile, as over gRPC.
    profiles = await insights_pb2_grpc.InsightsStub(channel).GetProfiles(
        pb.GetProfilesRequest(route="smart"), metadata=AUTH
    )
    assert [p.feedback for p in profiles.profiles] == [pytest.approx(1.0, rel=1e-3)]
    # Refusals: another key's call, an unknown call, a bad body, an undeclared metric.
    status, _, answer = await post(gateway, "/v1/feedback", body, stranger)
    assert (status, answer["error"]["code"]) == (403, "not_your_call")
    status, _, answer = await post(gateway, "/v1/feedback", {**body, "request_id": "0" * 24}, owner)
    assert (status, answer["error"]["code"]) == (404, "unknown_request")
    status, _, answer = await post(
        gateway, "/v1/feedback", {**body, "ratings": [{"metric": "thumbs", "score": 1, "boolean": True}]}, owner
    )
    assert (status, answer["error"]["param"]) == (400, "ratings[0]")
    status, _, answer = await post(gateway, "/v1/feedback", {"ratings": ratings}, owner)
    assert (status, answer["error"]["param"]) == (400, "request_id")
    status, _, answer = await post(
        gateway, "/v1/feedback", {**body, "ratings": [{"metric": "speed", "boolean": True}]}, owner
    )
    assert (status, answer["error"]["code"]) == (400, "unknown_metric")
