"""The audit log survives a killed server: SIGKILL under load loses at most the batching window (default mode) or
nothing (strict mode). The server runs as a separate process, as in production."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.server.process import Server, clean_environment

KEY = "gw-durability-test-key"
WINDOW_S = 0.050
CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {time_to_first_token_ms: 2, max_answer_tokens: 8}}
models:
  - {name: fast, provider: sim}
audit: {mode: MODE}
"""


async def load_until_killed(server: Server, run_s: float) -> tuple[dict[str, float], float]:
    """Calls from 8 clients until the server is SIGKILLed after `run_s`; returns each answered call's request id
    with the time its answer arrived, and the time of the kill."""
    answered: dict[str, float] = {}
    stop = asyncio.Event()

    async def client(stub: gateway_pb2_grpc.GatewayStub) -> None:
        request = pb.ChatRequest(model="fast", messages=[pb.Message(role="user", content="hello")])
        while not stop.is_set():
            try:
                response = await stub.Chat(request, metadata=(("authorization", f"Bearer {KEY}"),), timeout=5)
            except grpc.aio.AioRpcError:
                return
            answered[response.id] = time.time()

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        clients = [asyncio.create_task(client(stub)) for _ in range(8)]
        await asyncio.sleep(run_s)
        killed_at = time.time()
        server.kill()
        stop.set()
        await asyncio.gather(*clients)
    return answered, killed_at


@pytest.mark.parametrize("mode", ["batched", "strict"])
async def test_sigkill_under_load_loses_at_most_the_window(tmp_path: Path, mode: str) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.replace("MODE", mode))
    server = Server(tmp_path, {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY}, "--config", str(config))
    answered, killed_at = await load_until_killed(server, run_s=1.5)
    assert len(answered) > 200, "too little load to show anything"
    rows = sqlite3.connect(tmp_path / "gateway.db").execute("select request_id from audit").fetchall()
    stored = {r for (r,) in rows}
    lost = {rid: at for rid, at in answered.items() if rid not in stored}
    if mode == "strict":
        assert not lost, f"strict mode lost {len(lost)} answered calls"
    else:
        oldest_lost = min(lost.values(), default=killed_at)
        assert killed_at - oldest_lost <= WINDOW_S, (
            f"lost {len(lost)} of {len(answered)} records, answered up to {1000 * (killed_at - oldest_lost):.0f} ms "
            "before the kill"
        )
