"""Bursts of long streams: every call ends with a status a client can act on, and each has its audit record (the
scale-out issue: 4-31% of such a burst ended as a bare CANCELLED, with no record, because gRPC's core dropped the
calls the event loop had not taken yet), and a connection's streams past its limit wait for a slot instead of being
refused."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import orjson
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2_grpc

from tests.admin.helpers import chat_request
from tests.server.fixtures import AUTH, TEST_KEY, StartGateway
from tests.server.process import Server, clean_environment

BURST = 5000
CONNECTIONS = 5
"""1,000 streams a connection: under server.max_concurrent_streams (1,024), so every stream opens at once."""
OPEN_WITHIN_S = 1.0
CONFIG = """
providers:
  - name: sim-long
    type: simulated
    # A long answer: its first word after 0.5 s, then a word every 0.7 s (about 3 s in all).
    simulation: {time_to_first_token_ms: 500, per_token_ms: 700, max_answer_tokens: 4}
models:
  - name: long
    provider: sim-long
"""


async def stream(stub: gateway_pb2_grpc.GatewayStub) -> tuple[str, str]:
    """(status, request id) of one stream read to its end."""
    request_id = ""
    try:
        async for chunk in stub.ChatStream(chat_request("long"), metadata=AUTH, timeout=120):
            request_id = request_id or chunk.id
    except grpc.aio.AioRpcError as err:
        return err.code().name, request_id
    return "OK", request_id


async def audit_records(channel: grpc.aio.Channel, expected: int) -> list[dict[str, str]]:
    """Every audit record, once `expected` are written (the ledger commits in batches, within milliseconds)."""
    admin = admin_pb2_grpc.AdminStub(channel)
    deadline = time.monotonic() + 30
    while True:
        lines = [
            line
            async for chunk in admin.ExportAudit(apb.ExportAuditRequest(), metadata=AUTH)
            for line in chunk.jsonl.splitlines()
        ]
        if len(lines) >= expected or time.monotonic() > deadline:
            return [orjson.loads(line) for line in lines]
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def served(tmp_path: Path, config: str) -> AsyncIterator[tuple[list[grpc.aio.Channel], list[str]]]:
    """`gateway serve` on `config` as its own process, and CONNECTIONS channels to it, each its own connection
    (channels to one address otherwise share one), connected before the burst. The list gets the server's stderr
    once it has stopped."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config)
    env = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": TEST_KEY, "GATEWAY_LOG_LEVEL": "WARNING"}
    server = Server(tmp_path / "state", env, "--config", str(path))
    channels = [
        grpc.aio.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]
    log: list[str] = []
    try:
        await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 20) for c in channels))
        yield channels, log
    finally:
        for channel in channels:
            await channel.close()
        log.append(server.stop()[1])


@pytest.mark.timeout(300)
async def test_a_burst_of_long_streams_loses_none_and_audits_each(tmp_path: Path) -> None:
    async with served(tmp_path, CONFIG) as (channels, log):
        stubs = [gateway_pb2_grpc.GatewayStub(c) for c in channels]
        started = time.monotonic()
        calls = []
        for i in range(BURST):
            calls.append(asyncio.ensure_future(stream(stubs[i % CONNECTIONS])))
            if i % 100 == 99:
                # Open them evenly over about a second, as the clients did.
                await asyncio.sleep(max(0.0, started + OPEN_WITHIN_S * (i + 1) / BURST - time.monotonic()))
        outcomes = await asyncio.gather(*calls)
        records = await audit_records(channels[0], BURST)
    stderr = log[0]

    statuses = collections.Counter(status for status, _ in outcomes)
    assert statuses == {"OK": BURST}, f"{statuses}; server log tail:\n{stderr[-2000:]}"
    ids = {request_id for _, request_id in outcomes}
    assert len(ids) == BURST
    streams = [r for r in records if r["kind"] == "stream"]
    assert len(streams) == BURST
    assert {r["request_id"] for r in streams} == ids
    assert collections.Counter(r["status"] for r in streams) == {"OK": BURST}


async def test_streams_past_a_connections_limit_wait_for_a_slot(start_gateway: StartGateway) -> None:
    """One connection with five times server.max_concurrent_streams: the client queues the excess, and each gets
    a slot once a stream ends (gRPC's overload protection refused them: REFUSED_STREAM, UNAVAILABLE)."""
    _, channel = await start_gateway(
        """
server: {max_concurrent_streams: 8}
providers:
  - name: sim-long
    type: simulated
    simulation: {time_to_first_token_ms: 100, per_token_ms: 50, max_answer_tokens: 4}
models:
  - name: long
    provider: sim-long
"""
    )
    stub = gateway_pb2_grpc.GatewayStub(channel)
    outcomes = await asyncio.gather(*(stream(stub) for _ in range(40)))
    assert collections.Counter(status for status, _ in outcomes) == {"OK": 40}


QUICK_BESIDE = 2000
QUICK_CONFIG = """
providers:
  - name: sim
    type: simulated
    # Streams answer at once and then stay open: a stream's first chunk shows when the gateway took it.
    simulation: {time_to_first_token_ms: 0, per_token_ms: 1000, max_answer_tokens: 2}
  - name: sim-quick
    type: simulated
    simulation: {time_to_first_token_ms: 0, per_token_ms: 0, max_answer_tokens: 2}
models:
  - name: long
    provider: sim
  - name: quick
    provider: sim-quick
"""


async def first_chunk_at(stub: gateway_pb2_grpc.GatewayStub) -> float:
    """When a stream's first chunk arrived (monotonic); its status is the other test's concern."""
    async for _ in stub.ChatStream(chat_request("long"), metadata=AUTH, timeout=120):
        return time.monotonic()
    raise AssertionError("a stream without a chunk")


@pytest.mark.timeout(300)
async def test_a_quick_call_does_not_wait_behind_a_burst_of_streams_being_taken(tmp_path: Path) -> None:
    """gRPC hands the server one call per turn of its event loop and queue; on one queue, a quick call sent right
    after a burst of streams waited until the gateway had taken every one of them (seconds, on a busy loop). Streams
    have a queue of their own, so it is answered before most of the burst has even been taken."""
    async with served(tmp_path, QUICK_CONFIG) as (channels, _):
        stubs = [gateway_pb2_grpc.GatewayStub(c) for c in channels]
        quick = stubs.pop()
        await quick.Chat(chat_request("quick"), metadata=AUTH, timeout=30)  # the server's first-call work
        streams = [asyncio.ensure_future(first_chunk_at(stubs[i % len(stubs)])) for i in range(QUICK_BESIDE)]
        await asyncio.sleep(0.1)  # the streams reach the server first
        answer = await quick.Chat(chat_request("quick"), metadata=AUTH, timeout=120)
        answered = time.monotonic()
        firsts = await asyncio.gather(*streams)
    assert answer.message.content
    taken_before = sum(1 for at in firsts if at < answered)
    assert taken_before < QUICK_BESIDE / 2, f"{taken_before} of {QUICK_BESIDE} streams were taken before it"
