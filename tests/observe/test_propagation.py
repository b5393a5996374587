"""W3C trace context extracted from gRPC metadata (what goes on to providers: tests/observe/test_spans.py)."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from gateway.observe.propagation import caller_trace_id, extract_context

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


@pytest.mark.parametrize(
    "header",
    [
        TRACEPARENT,
        f" \t{TRACEPARENT}",
        f"{TRACEPARENT} ",
        f"01-{TRACE_ID}-{SPAN_ID}-01-what-a-later-version-adds",
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has nothing after the flags
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is invalid
        f"00-{TRACE_ID.upper()}-{SPAN_ID}-01",
        f"00-{'0' * 32}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-01-{'x' * 500}",
        f"01-{TRACE_ID}-{SPAN_ID}-01-{'x' * 500}",  # longer than the propagator reads
        "00-not-a-trace-01",
        "",
    ],
)
def test_the_callers_trace_id_is_the_one_extract_continues(header: str) -> None:
    metadata = [("authorization", "Bearer sk-x"), ("traceparent", header)]
    context = extract_context(metadata)
    expected = f"{trace.get_current_span(context).get_span_context().trace_id:032x}" if context is not None else ""
    assert caller_trace_id(metadata) == expected
    assert caller_trace_id(None) == caller_trace_id([("traceparent", header.encode())]) == ""
