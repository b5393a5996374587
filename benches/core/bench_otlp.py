"""OTLP trace export encoding of 512 spans (20 attributes and one event each, as a gateway call's server span):
gateway._core's (`encode_span_chunk`, then `encode_export`) against opentelemetry-python's encoder (`encode_spans` +
`SerializeToString`, what its OTLP exporters run) on equivalent ReadableSpans, same run. The third case starts from
the same ReadableSpans and reads them into tuples in Python first: the cost if the Rust encoder sat behind an SDK
SpanExporter.

    pytest benches/core/bench_otlp.py --benchmark-enable --benchmark-columns=min,median,max

Divide by SPANS for one span.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, cast

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from pytest_benchmark.fixture import BenchmarkFixture

from tests.core.test_otlp import decode, encode_spans, readable_spans

if TYPE_CHECKING:
    from gateway._core import OtlpAttributes, OtlpAttributeValue, OtlpSpan

SPANS = 512
GROUP = f"otlp: {SPANS} spans, 20 attributes and 1 event each"
SCOPE = ("gateway.observe", "0.1.0")
RESOURCE: list[tuple[str, OtlpAttributeValue]] = [
    ("service.name", "llm-gateway"),
    ("service.version", "0.1.0"),
    ("service.instance.id", "gw-7f9c2d"),
    ("host.name", "gateway-0"),
    ("telemetry.sdk.language", "python"),
]
START = 1_700_000_000_000_000_000


def call_span(n: int) -> OtlpSpan:
    """A Chat call's server span, with the attribute types and sizes the gateway sets."""
    attributes: list[tuple[str, OtlpAttributeValue]] = [
        ("rpc.system", "grpc"),
        ("rpc.service", "llmgateway.v1.Gateway"),
        ("rpc.method", "Chat"),
        ("rpc.grpc.status_code", 0),
        ("gateway.request_id", f"req-{n:016x}"),
        ("gateway.team", "search"),
        ("gateway.key_id", "key_9a8b7c6d"),
        ("gateway.route", "default"),
        ("gen_ai.system", "openai"),
        ("gen_ai.request.model", "gpt-4o-mini"),
        ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        ("gen_ai.request.max_tokens", 1024),
        ("gen_ai.request.temperature", 0.7),
        ("gen_ai.usage.input_tokens", 1200 + n % 300),
        ("gen_ai.usage.output_tokens", 180 + n % 40),
        ("gen_ai.response.finish_reasons", ["stop"]),
        ("gateway.cost_usd", 0.000_318 + n * 1e-9),
        ("gateway.cache_hit", n % 4 == 0),
        ("gateway.streamed", n % 2 == 0),
        ("gateway.attempts", 1 + n % 3),
    ]
    start = START + n * 1_000_000
    events = [("first_token", start + 150_000_000, [("gateway.ttft_ms", 150.0), ("gen_ai.chunk", 1)])]
    return (
        (0x5B8EFFF798038103D269B633813FC60C + n) % 2**128,
        0xEEE19B7EC3C1B174 + n,
        0x0102030405060708,
        "llmgateway.v1.Gateway/Chat",
        2,
        start,
        start + 400_000_000,
        attributes,
        events,
        1 if n % 10 else 2,
        "" if n % 10 else "upstream 503",
        "",
        0x100,
    )


TUPLES = [call_span(n) for n in range(SPANS)]
READABLE = readable_spans(RESOURCE, *SCOPE, TUPLES)


def span_tuple(span: ReadableSpan) -> OtlpSpan:
    """A ReadableSpan as encode_span_chunk's tuple, read attribute by attribute as an SDK exporter would have to. The
    SDK types its attribute values more broadly (bytes, mappings); the gateway sets none, hence the casts."""
    context = span.context
    assert context is not None, "a ReadableSpan always has a context"
    parent = span.parent
    status = span.status
    return (
        context.trace_id,
        context.span_id,
        parent.span_id if parent else 0,
        span.name,
        span.kind.value + 1,
        span.start_time or 0,
        span.end_time or 0,
        cast("OtlpAttributes", span.attributes.items() if span.attributes else ()),
        [
            (e.name, e.timestamp, cast("OtlpAttributes", e.attributes.items() if e.attributes else ()))
            for e in span.events
        ],
        status.status_code.value,
        status.description or "",
        ",".join(f"{k}={v}" for k, v in context.trace_state.items()),
        0x300 if parent and parent.is_remote else 0x100,
    )


def rust_from_tuples() -> bytes:
    return encode_spans(RESOURCE, *SCOPE, TUPLES)


def rust_from_readable_spans(spans: Sequence[ReadableSpan] = READABLE) -> bytes:
    resource = cast("OtlpAttributes", spans[0].resource.attributes.items())
    return encode_spans(resource, *SCOPE, [span_tuple(span) for span in spans])


def python_sdk(spans: Sequence[ReadableSpan] = READABLE) -> bytes:
    return sdk_encode_spans(spans).SerializeToString()


@pytest.mark.parametrize("encoder", [rust_from_tuples, rust_from_readable_spans])
def test_the_encoders_agree(encoder: Callable[[], bytes]) -> None:
    assert decode(encoder()) == decode(python_sdk())


def test_python_sdk_encoder(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP
    benchmark(python_sdk)


def test_rust_encoder_from_tuples(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP
    benchmark(rust_from_tuples)


def test_rust_encoder_from_readable_spans(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP
    benchmark(rust_from_readable_spans)
