"""One Chat round trip at concurrency 1: the gateway beside its references, in the same run.

The gateway (full pipeline, OpenAI adapter), a bare grpc.aio + aiohttp forwarder and a gRPC echo server each run in
their own process against the same zero-latency OpenAI-format upstream; the direct HTTP call to the upstream is the
floor. The difference of medians is what each layer adds.

    pytest benches/server/bench_roundtrip.py --benchmark-enable
"""

from __future__ import annotations

import http.client
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import orjson
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc
from pytest_benchmark.fixture import BenchmarkFixture

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, free_port, gateway_config, process

REQUEST = pb.ChatRequest(
    model="bench",
    messages=[
        pb.Message(role="system", content="You are a concise assistant."),
        pb.Message(role="user", content="Summarise the benefits of a central LLM gateway in two sentences."),
    ],
    max_tokens=64,
)
METADATA = (("authorization", f"Bearer {BENCH_KEY}"),)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    ports = {name: free_port() for name in ("upstream", "echo", "forwarder", "gateway")}
    upstream = f"http://127.0.0.1:{ports['upstream']}/v1"
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        config = Path(tmp) / "bench.yaml"
        config.write_text(gateway_config(upstream, upstream))
        env = {
            "GATEWAY_BOOTSTRAP_KEY": BENCH_ADMIN_KEY,
            BENCH_KEY_ENV: BENCH_KEY,
            "GATEWAY_STATE_DIR": tmp,
            "BENCH_UPSTREAM_KEY": "sk-bench",
            "GATEWAY_LOG_LEVEL": "ERROR",
        }
        stack.enter_context(process("-m", "benches.upstream", "--port", str(ports["upstream"]), port=ports["upstream"]))
        stack.enter_context(
            process("-m", "benches.reference_servers", "echo", "--port", str(ports["echo"]), port=ports["echo"])
        )
        stack.enter_context(
            process(
                "-m",
                "benches.reference_servers",
                "forwarder",
                "--port",
                str(ports["forwarder"]),
                "--upstream",
                upstream,
                port=ports["forwarder"],
            )
        )
        stack.enter_context(
            process(
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--address",
                f"127.0.0.1:{ports['gateway']}",
                port=ports["gateway"],
                env=env,
            )
        )
        yield ports


@pytest.mark.parametrize("target", ["gateway", "forwarder", "echo"])
def test_grpc_round_trip(benchmark: BenchmarkFixture, servers: dict[str, int], target: str) -> None:
    benchmark.group = "one Chat round trip, c=1 (gateway vs bare forwarder vs gRPC echo vs direct HTTP)"
    with grpc.insecure_channel(f"127.0.0.1:{servers[target]}") as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        response = benchmark.pedantic(
            lambda: stub.Chat(REQUEST, metadata=METADATA, timeout=5), rounds=2000, warmup_rounds=200
        )
    assert response.message.content


def test_direct_http_round_trip(benchmark: BenchmarkFixture, servers: dict[str, int]) -> None:
    benchmark.group = "one Chat round trip, c=1 (gateway vs bare forwarder vs gRPC echo vs direct HTTP)"
    connection = http.client.HTTPConnection("127.0.0.1", servers["upstream"])
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})

    def call() -> dict[str, object]:
        connection.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        result: dict[str, object] = orjson.loads(connection.getresponse().read())
        return result

    assert benchmark.pedantic(call, rounds=2000, warmup_rounds=200)["choices"]
    connection.close()
