"""The OTLP sink end to end: a gateway exporting its calls' spans, encoded by the Rust core, to a local collector
over gRPC and over HTTP; the collector decodes them with the official protos."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.observe.span_sinks import OtlpSink
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
