"""The time range of the reporting methods (GetUsage, GetComplianceReport, GetAnalytics, EvaluatePolicy): an unset
end is now and an unset start the method's default span before it; a bound set to the epoch is a bound, and a start
not before the end is refused with INVALID_ARGUMENT (BAD_RANGE), whichever service the method is on."""

from __future__ import annotations

import time
from collections.abc import Awaitable

import grpc
import pytest
from google.protobuf import timestamp_pb2
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import insights_pb2 as ipb
from llmgateway.v1 import insights_pb2_grpc

from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

EPOCH = timestamp_pb2.Timestamp(seconds=0)


async def test_a_bound_at_the_epoch_is_a_bound_and_an_empty_range_is_refused(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway()
    admin, insights = Admin.on(channel), insights_pb2_grpc.InsightsStub(channel)
    secret, _ = await admin.key(team="red")
    await admin.gateway.Chat(chat_request("fast"), metadata=bearer(secret))
    await gateway.audit.flush()

    usage = await admin.admin.GetUsage(apb.GetUsageRequest(), metadata=AUTH)
    analytics = await insights.GetAnalytics(ipb.GetAnalyticsRequest(), metadata=AUTH)
    assert (usage.total.requests, len(analytics.rows)) == (1, 1), "the default range holds the call just made"
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(until=EPOCH), metadata=AUTH)
    analytics = await insights.GetAnalytics(ipb.GetAnalyticsRequest(until=EPOCH), metadata=AUTH)
    assert (usage.total.requests, len(analytics.rows)) == (0, 0), "a range ending at the epoch holds no call of today"

    now = int(time.time())
    later, earlier = timestamp_pb2.Timestamp(seconds=now), timestamp_pb2.Timestamp(seconds=now - 60)
    refused: list[Awaitable[object]] = [
        admin.admin.GetUsage(apb.GetUsageRequest(since=later, until=earlier), metadata=AUTH),
        admin.admin.GetComplianceReport(
            apb.GetComplianceReportRequest(team="red", since=later, until=later), metadata=AUTH
        ),
        insights.GetAnalytics(ipb.GetAnalyticsRequest(since=later, until=earlier), metadata=AUTH),
    ]
    for call in refused:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert reason_of(caught.value) == "BAD_RANGE"
        assert "since must come before until" in (caught.value.details() or "")
