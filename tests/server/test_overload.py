"""server.max_in_flight: past it a call is refused at once with a status a client can act on, audited and counted,
and the gateway keeps serving."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2_grpc

from gateway.server.app import Gateway
from tests.admin.helpers import chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

MAX_IN_FLIGHT = 4
CONFIG = f"""
server: {{max_in_flight: {MAX_IN_FLIGHT}}}
providers:
  - name: sim
    type: simulated
  - name: sim-slow
    type: simulated
    simulation: {{time_to_first_token_ms: 1500, max_answer_tokens: 4}}
models:
  - name: fast
    provider: sim
  - name: slow
    provider: sim-slow
"""


def retry_delay(err: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    raise AssertionError("no RetryInfo in the status")


def in_flight(gateway: Gateway, kind: str) -> float:
    value = gateway.metrics.registry.get_sample_value("llm_gateway_in_flight_requests", {"kind": kind})
    return value or 0.0


async def drain(call: grpc.aio.UnaryStreamCall) -> int:  # type: ignore[type-arg]
    return len([chunk async for chunk in call])


async def test_calls_past_max_in_flight_are_refused_at_once_audited_and_counted(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    # Streams waiting 1.5 s for their first token hold every slot.
    holders = [asyncio.ensure_future(drain(stub.ChatStream(chat_request("slow"), metadata=AUTH))) for _ in range(4)]
    deadline = time.monotonic() + 5
    while in_flight(gateway, "stream") < MAX_IN_FLIGHT:
        assert time.monotonic() < deadline, "the holding streams never got in flight"
        await asyncio.sleep(0.01)

    refused: list[grpc.aio.AioRpcError] = []
    for call in (
        lambda: drain(stub.ChatStream(chat_request("slow"), metadata=AUTH)),
        lambda: stub.Chat(chat_request("fast"), metadata=AUTH),
        lambda: drain(stub.ChatStream(chat_request("no-such-model"), metadata=AUTH)),
    ):
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call()
        # At once: the holders' first tokens are still a second away.
        assert time.monotonic() - started < 0.5
        refused.append(caught.value)
    for err in refused:
        assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(err) == "GATEWAY_OVERLOADED"
        assert retry_delay(err) == pytest.approx(1.0)
        assert "server.max_in_flight" in (err.details() or "")

    # The held streams are served in full, and the slots come back: the gateway keeps serving.
    assert all(chunks > 1 for chunks in await asyncio.gather(*holders))
    assert in_flight(gateway, "stream") == 0
    assert (await stub.Chat(chat_request("fast"), metadata=AUTH)).message.content
    streamed = [c async for c in stub.ChatStream(chat_request("fast"), metadata=AUTH)]
    assert streamed[-1].finish_reason == "stop"

    await gateway.audit.flush()
    admin = admin_pb2_grpc.AdminStub(channel)
    records = (
        await admin.QueryAudit(apb.QueryAuditRequest(status="RESOURCE_EXHAUSTED", limit=100), metadata=AUTH)
    ).records
    assert sorted((r.kind, r.model, r.reason) for r in records) == [
        ("chat", "fast", "GATEWAY_OVERLOADED"),
        ("stream", "no-such-model", "GATEWAY_OVERLOADED"),
        ("stream", "slow", "GATEWAY_OVERLOADED"),
    ]
    everything = (await admin.QueryAudit(apb.QueryAuditRequest(limit=100), metadata=AUTH)).records
    assert sorted(r.status for r in everything) == ["OK"] * 6 + ["RESOURCE_EXHAUSTED"] * 3
    counted = sum(
        sample.value
        for metric in gateway.metrics.registry.collect()
        if metric.name == "llm_gateway_requests"
        for sample in metric.samples
        if sample.name == "llm_gateway_requests_total" and sample.labels["code"] == "RESOURCE_EXHAUSTED"
    )
    assert counted == 3
