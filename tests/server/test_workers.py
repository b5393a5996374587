"""`gateway serve --workers N`, run as operators run it: a supervisor process and its workers on one port.

Which worker takes a connection is the kernel's choice (SO_REUSEPORT hashes each connection), so tests open many
client connections and check, from /proc, that every worker holds some before asserting anything per worker.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc, insights_pb2, insights_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.otlp import FakeCollector
from tests.server.process import Server, clean_environment, client_connections, free_port, gateway, worker_pids
from tests.store.redis import RedisServer

KEY = "gw-workers-test-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {time_to_first_token_ms: 2, max_answer_tokens: 8}}
  - {name: slow, type: simulated, simulation: {time_to_first_token_ms: 1500, max_answer_tokens: 4}}
models:
  - {name: fast, provider: sim}
  - {name: slow, provider: slow}
observe: {drift: {window_s: 1}}
"""
SERVING = r"2 workers serving"
CHANNELS = 24
"""Client connections a test opens: the chance that all land on one of two workers is 2^-23."""
OWN_CONNECTION = (("grpc.use_local_subchannel_pool", 1),)
"""Channels of one process share connections to one address unless each keeps its own."""


def _channel(server: Server) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(server.address, options=OWN_CONNECTION)


def _start(tmp_path: Path, *extra: str, env: dict[str, str] | None = None, config: str = CONFIG) -> Server:
    path = tmp_path / "gateway.yaml"
    path.write_text(config)
    environment = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY, **(env or {})}
    return Server(tmp_path / "state", environment, "--config", str(path), "--workers", "2", *extra, ready=SERVING)


def _both_hold_connections(server: Server) -> None:
    held = {index: client_connections(pid, server.port) for index, pid in worker_pids(server).items()}
    assert len(held) == 2
    assert all(held.values()), f"connections per worker: {held}"


async def _chat(channel: grpc.aio.Channel, model: str = "fast", metadata: tuple[tuple[str, str], ...] = AUTH) -> str:
    request = pb.ChatRequest(model=model, messages=[pb.Message(role="user", content="hello")])
    response = await gateway_pb2_grpc.GatewayStub(channel).Chat(request, metadata=metadata, timeout=10)
    return response.id


async def _scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_two_workers_serve_one_port_with_one_key_one_metrics_endpoint_and_named_traces(
    tmp_path: Path,
) -> None:
    collector = FakeCollector()
    await collector.start()
    metrics_port = free_port()
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.grpc_port}",
        "GATEWAY_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    # No GATEWAY_BOOTSTRAP_KEY and no keys: the gateway makes an admin key on its first start.
    server = Server(
        tmp_path / "state", {**clean_environment(), **env}, "--config", str(path), "--workers", "2", ready=SERVING
    )
    try:
        printed = re.findall(r"gw-[A-Za-z0-9_-]{20,}", server.log(stdout=True))
        assert len(printed) == 1, server.log(stdout=True)  # printed once, by the supervisor
        metadata = (("authorization", f"Bearer {printed[0]}"),)
        channels = [_channel(server) for _ in range(CHANNELS)]
        try:
            for channel in channels:
                for _ in range(2):
                    await _chat(channel, metadata=metadata)  # the one key works on whichever worker answers
            _both_hold_connections(server)
        finally:
            for channel in channels:
                await channel.close()

        samples = await _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        requests = sum(v for (name, labels), v in samples.items() if name == "llm_gateway_requests_total")
        assert requests == 2 * CHANNELS  # both workers' counters, summed
        in_flight = [v for (name, _), v in samples.items() if name == "llm_gateway_in_flight_requests"]
        assert in_flight == [0.0]

        deadline = time.monotonic() + 15
        instances: set[str] = set()
        while time.monotonic() < deadline and len(instances) < 2:
            await asyncio.sleep(0.2)
            instances = {
                kv.value.string_value
                for request in collector.requests
                for spans in request.resource_spans
                for kv in spans.resource.attributes
                if kv.key == "service.instance.id"
            }
        assert len(instances) == 2
        assert {re.sub(r".*-(w\d)-\d+$", r"\1", i) for i in instances} == {"w0", "w1"}
    finally:
        _, log = server.stop()
        await collector.stop()
    assert log.count("audit retention: purging every") == 1  # worker 0 only
    assert "2 workers without state.redis_url" in log  # limits are per worker, said once at start
    assert (tmp_path / "state" / "bootstrap_key.sha256").exists()


async def test_a_killed_worker_is_restarted_while_the_other_keeps_serving(tmp_path: Path) -> None:
    server = _start(tmp_path)
    outcomes: list[tuple[float, bool]] = []
    stop = asyncio.Event()

    async def client(channel: grpc.aio.Channel) -> None:
        while not stop.is_set():
            try:
                await _chat(channel)
            except grpc.aio.AioRpcError:
                outcomes.append((time.monotonic(), False))
                await asyncio.sleep(0.01)
            else:
                outcomes.append((time.monotonic(), True))

    channels = [_channel(server) for _ in range(CHANNELS)]
    try:
        tasks = [asyncio.create_task(client(channel)) for channel in channels]
        await asyncio.sleep(1.0)
        _both_hold_connections(server)
        victim = worker_pids(server)[1]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.to_thread(server.wait_for_log, rf"worker 1 \(pid {victim}\) was killed by SIGKILL")
        restarted = await asyncio.to_thread(server.wait_for_log, r"worker 1 \(pid (\d+)\) serving", count=2)
        assert int(restarted[-1].group(1)) != victim
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for channel in channels:
            await channel.close()
        _, log = server.stop()
    served_meanwhile = [t for t, ok in outcomes if ok and killed_at < t < killed_at + 0.5]
    assert len(served_meanwhile) > 20, "worker 0 stopped serving while worker 1 was down"
    failed = [t for t, ok in outcomes if not ok]
    assert all(t > killed_at for t in failed)  # only calls caught by the kill failed
    assert all(ok for t, ok in outcomes if t > outcomes[-1][0] - 0.5)  # every client served again at the end
    assert "failed; retrying" not in log  # no audit write failed, though both workers wrote the one SQLite file


async def test_sigterm_drains_every_worker_and_writes_every_record(tmp_path: Path) -> None:
    server = _start(tmp_path)
    channels = [_channel(server) for _ in range(CHANNELS)]
    try:
        calls = [asyncio.create_task(_chat(channel, model="slow")) for channel in channels]
        await asyncio.sleep(0.7)  # every call in flight: the slow model answers after 1.5 s
        _both_hold_connections(server)
        server.proc.send_signal(signal.SIGTERM)
        ids = await asyncio.gather(*calls)  # each answered although its worker was told to stop
    finally:
        for channel in channels:
            await channel.close()
    assert server.proc.wait(timeout=30) == 0
    log = server.output()[1]
    assert log.count("shutting down: finishing in-flight calls") == 2
    assert re.search(r"worker 0 \(pid \d+\) stopped \(exited with code 0\)", log)
    assert re.search(r"worker 1 \(pid \d+\) stopped \(exited with code 0\)", log)
    with sqlite3.connect(tmp_path / "state" / "gateway.db") as db:
        audited = {row[0] for row in db.execute("SELECT request_id FROM audit WHERE status = 'OK'")}
        billed = db.execute("SELECT SUM(requests) FROM ledger WHERE served_model = 'slow'").fetchone()[0]
    assert audited == set(ids)
    assert billed == CHANNELS


async def test_model_health_covers_the_calls_of_every_worker(tmp_path: Path) -> None:
    server = _start(tmp_path)
    channels = [_channel(server) for _ in range(CHANNELS)]
    try:
        await asyncio.gather(*(_chat(channel) for channel in channels))
        _both_hold_connections(server)
        insights = insights_pb2_grpc.InsightsStub(channels[0])
        deadline = time.monotonic() + 15
        seen = 0
        while time.monotonic() < deadline and seen != CHANNELS:
            await asyncio.sleep(0.5)  # windows are 1 s; each worker shares its windows every second
            response = await insights.GetModelHealth(insights_pb2.GetModelHealthRequest(model="fast"), metadata=AUTH)
            assert [m.model for m in response.models] == ["fast"]
            health = response.models[0]
            seen = sum(int(f.count) for f in (*health.current, *health.baseline) if f.metric == "status")
        assert seen == CHANNELS
    finally:
        for channel in channels:
            await channel.close()
        server.stop()


async def test_every_worker_serves_the_http_front_door_on_one_port(tmp_path: Path) -> None:
    http_port = free_port()
    server = _start(tmp_path, env={"GATEWAY_HTTP_ADDR": f"127.0.0.1:{http_port}"})
    body = {"model": "fast", "messages": [{"role": "user", "content": "hello"}]}
    sessions = [aiohttp.ClientSession() for _ in range(CHANNELS)]  # a connection each, kept open between calls
    try:
        for session in sessions:
            async with session.post(
                f"http://127.0.0.1:{http_port}/v1/chat/completions",
                json=body,
                headers={"authorization": f"Bearer {KEY}"},
            ) as response:
                assert response.status == 200
                assert (await response.json())["gateway"]["simulated"]
        held = {index: client_connections(pid, http_port) for index, pid in worker_pids(server).items()}
        assert len(held) == 2
        assert all(held.values()), f"HTTP connections per worker: {held}"
    finally:
        for session in sessions:
            await session.close()
        server.stop()
    done = gateway(
        "serve",
        "--workers",
        "2",
        "--http-address",
        "127.0.0.1:0",
        env={**clean_environment(), "GATEWAY_STATE_DIR": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "--workers needs a fixed port to share; 127.0.0.1:0" in done.stderr


async def test_with_redis_no_warning_and_a_fixed_port_is_required(tmp_path: Path, redis_server: RedisServer) -> None:
    server = _start(tmp_path, config=CONFIG + f"state: {{redis_url: '{redis_server.url}'}}\n")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            await _chat(channel)
    finally:
        _, log = server.stop()
    assert "without state.redis_url" not in log

    path = tmp_path / "gateway.yaml"
    done = gateway(
        "serve", "--config", str(path), "--workers", "2", "--address", "127.0.0.1:0", env=clean_environment()
    )
    assert done.returncode == 2
    assert "--workers needs a fixed port" in done.stderr


async def test_two_workers_on_redis_hold_one_keys_rpm_together(tmp_path: Path, redis_server: RedisServer) -> None:
    limited = "gw-workers-limited-key-0123456789"
    config = CONFIG + (
        "keys:\n  - {name: service, key_env: LIMITED_KEY, team: shop, rpm: 30, max_concurrent: 1000}\n"
        f"state: {{redis_url: '{redis_server.url}'}}\n"
        "limits: {mode: exact, redis_timeout_s: 5}\n"
    )
    server = _start(tmp_path, config=config, env={"LIMITED_KEY": limited})
    channels = [_channel(server) for _ in range(CHANNELS)]
    try:
        metadata = (("authorization", f"Bearer {limited}"),)
        started = time.monotonic()
        results = await asyncio.gather(
            *(_chat(channels[i % CHANNELS], metadata=metadata) for i in range(200)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        _both_hold_connections(server)
    finally:
        for channel in channels:
            await channel.close()
        server.stop()
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in refused), refused
    assert {r.code() for r in refused if isinstance(r, grpc.aio.AioRpcError)} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    # Each worker alone would let 30 through; together they let 30 a minute through, plus what refilled meanwhile.
    served = len(results) - len(refused)
    assert 30 <= served <= 30 + int(elapsed / 2) + 1


@pytest.mark.parametrize("workers", ["-1"])
def test_a_negative_worker_count_is_refused(tmp_path: Path, workers: str) -> None:
    done = gateway("serve", "--workers", workers, env={**clean_environment(), "GATEWAY_STATE_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "--workers" in done.stderr


def test_a_worker_that_cannot_start_stops_the_gateway(tmp_path: Path) -> None:
    with socket.socket() as taken:  # listening without SO_REUSEPORT: no worker can bind the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**clean_environment(), "GATEWAY_STATE_DIR": str(tmp_path), "GATEWAY_METRICS_ADDR": ""}
        done = gateway("serve", "--workers", "2", "--address", f"127.0.0.1:{port}", env=env)
    assert done.returncode == 1
    assert re.search(r"worker \d \(pid \d+\) exited with code 1 while starting; stopping the gateway", done.stderr)


async def test_workers_on_postgresql_start_once_and_write_every_record(tmp_path: Path, postgres_url: str) -> None:
    """The schema and the config's teams are written once, by the supervisor (concurrent create_all and team
    upserts from several workers raced on PostgreSQL); each worker writes its records there."""
    teams = "teams: [{name: research, budgets: [{period: day, hard_usd: 100}]}]\n"
    server = _start(tmp_path, config=CONFIG + teams + f"state: {{database_url: '{postgres_url}'}}\n")
    channels = [_channel(server) for _ in range(CHANNELS)]
    try:
        ids = await asyncio.gather(*(_chat(channel) for channel in channels))
        _both_hold_connections(server)
    finally:
        for channel in channels:
            await channel.close()
        _, log = server.stop()
    assert "failed; retrying" not in log
    connection = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        audited = {row["request_id"] for row in await connection.fetch("SELECT request_id FROM audit")}
        budgets = await connection.fetchval("SELECT COUNT(*) FROM budgets")
    finally:
        await connection.close()
    assert audited == set(ids)
    assert budgets == 1
