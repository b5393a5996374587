"""The OTLP sink end to end: a gateway exporting its calls' spans, encoded by the Rust core, to a local collector
over gRPC and over HTTP; the collector decodes them with the official protos."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from gateway.observe.span_sinks import MAX_QUEUE_SPANS, OtlpSink, otlp_transport
from gateway.observe.spans import KIND_SERVER, SpanData
from tests.admin.helpers import Admin, chat_request
from tests.fakes.otlp import FakeCollector
from tests.server.fixtures import AUTH, SIMULATED_CONFIG, StartGateway


@pytest.fixture
async def collector() -> AsyncIterator[FakeCollector]:
    fake = FakeCollector()
    await fake.start()
    yield fake
    await fake.stop()


def attributes(span: Span) -> dict[str, object]:
    out: dict[str, object] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value") or "string_value")
    return out


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_calls_reach_a_collector_as_one_trace_each(
    start_gateway: StartGateway, collector: FakeCollector, protocol: str
) -> None:
    port = collector.grpc_port if protocol == "grpc" else collector.http_port
    config = SIMULATED_CONFIG + (
        "observe: {tracing: {exporter: otlp, protocol: "
        f'"{protocol}", endpoint: "http://127.0.0.1:{port}", service_name: gw-under-test}}}}\n'
    )
    gateway, channel = await start_gateway(config)
    admin = Admin.on(channel)
    response = await admin.gateway.Chat(chat_request("fast", text="hello there", max_tokens=10), metadata=AUTH)
    async for _ in admin.gateway.ChatStream(chat_request("fast", text="hello again"), metadata=AUTH):
        pass
    sink = gateway.tracing
    assert isinstance(sink, OtlpSink)
    assert await asyncio.to_thread(sink.force_flush, 10_000)
    spans = collector.spans()
    servers = {s.name: s for s in spans if s.kind == Span.SPAN_KIND_SERVER}
    assert set(servers) == {"llmgateway.v1.Gateway/Chat", "llmgateway.v1.Gateway/ChatStream"}
    chat = servers["llmgateway.v1.Gateway/Chat"]
    values = attributes(chat)
    assert values["llm_gateway.request_id"] == response.id
    assert values["gen_ai.request.model"] == "fast"
    assert values["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert values["rpc.grpc.status_code"] == "OK"
    [attempt] = [s for s in spans if s.parent_span_id == chat.span_id]
    assert attempt.kind == Span.SPAN_KIND_CLIENT
    assert attempt.name == "chat fast"
    assert attempt.trace_id == chat.trace_id
    assert chat.start_time_unix_nano <= attempt.start_time_unix_nano <= attempt.end_time_unix_nano
    assert attempt.end_time_unix_nano <= chat.end_time_unix_nano
    assert [e.name for e in servers["llmgateway.v1.Gateway/ChatStream"].events] == ["first_chunk"]
    assert collector.resource()["service.name"] == "gw-under-test"


def _span(index: int) -> SpanData:
    return (1, index + 1, 0, "Chat", KIND_SERVER, 1, 2, [("n", index)], [], 0, "", "", 1)


@pytest.mark.parametrize("collector_up", [True, False])
async def test_every_span_is_exported_or_counted_as_dropped(collector: FakeCollector, collector_up: bool) -> None:
    """Added as fast as one thread can, twice what the queue holds: each span either reaches the collector or is
    counted in `dropped` (a full queue, a failed export, or shutdown), none twice."""
    port = collector.grpc_port if collector_up else _closed_port()
    transport = otlp_transport("grpc", f"http://127.0.0.1:{port}", timeout_s=2.0)
    sink = OtlpSink(transport, ALWAYS_ON, {"service.name": "gw"})
    calls = MAX_QUEUE_SPANS  # two spans a call: twice what the queue holds

    def add_all() -> None:
        for index in range(calls):
            sink.add([_span(2 * index), _span(2 * index + 1)])
        sink.shutdown()

    await asyncio.to_thread(add_all)
    received = len(collector.spans())
    assert received + sink.dropped == 2 * calls
    if collector_up:
        assert received >= MAX_QUEUE_SPANS  # at least what the queue held reached the collector
        assert len({span.span_id for span in collector.spans()}) == received
    else:
        assert received == 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
