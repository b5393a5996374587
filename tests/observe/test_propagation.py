"""W3C trace context: extracted from gRPC metadata, injected into upstream headers, round trip intact."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.observe.propagation import extract_context, inject_headers

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_extract_reads_traceparent_and_tracestate_among_other_metadata() -> None:
    context = extract_context(
        [("authorization", "Bearer sk-x"), ("traceparent", TRACEPARENT), ("tracestate", "vendor=abc")]
    )
    assert context is not None
    span_context = trace.get_current_span(context).get_span_context()
    assert span_context.trace_id == int(TRACE_ID, 16)
    assert span_context.span_id == int(SPAN_ID, 16)
    assert span_context.is_remote
    assert span_context.trace_flags.sampled
    assert span_context.trace_state.get("vendor") == "abc"


def test_extract_without_or_with_a_malformed_traceparent_is_none() -> None:
    assert extract_context(None) is None
    assert extract_context([]) is None
    assert extract_context([("tracestate", "vendor=abc")]) is None
    assert extract_context([("traceparent", "00-not-a-trace-01")]) is None
    assert extract_context([("traceparent", f"00-{'0' * 32}-{SPAN_ID}-01")]) is None  # all-zero trace id is invalid
    assert extract_context([("traceparent", TRACEPARENT.encode())]) is None  # a bytes value is not W3C text


def test_round_trip_metadata_to_headers_keeps_the_trace() -> None:
    headers: dict[str, str] = {"content-type": "application/json"}
    inject_headers(headers, extract_context([("traceparent", TRACEPARENT), ("tracestate", "vendor=abc")]))
    assert headers == {"content-type": "application/json", "traceparent": TRACEPARENT, "tracestate": "vendor=abc"}


def test_inject_of_a_child_span_carries_the_callers_trace_and_the_childs_id() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("t").start_span("child", context=extract_context([("traceparent", TRACEPARENT)]))
    headers: dict[str, str] = {}
    inject_headers(headers, trace.set_span_in_context(span))
    span.end()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert span_id == f"{span.get_span_context().span_id:016x}"
    assert span_id != SPAN_ID


def test_inject_without_a_context_adds_nothing() -> None:
    headers: dict[str, str] = {}
    inject_headers(headers, None)
    assert headers == {}
