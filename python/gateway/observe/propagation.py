"""W3C trace context across the gateway: taken from the caller's gRPC metadata, sent on in upstream HTTP headers.

Always the W3C `traceparent`/`tracestate` format (the issue's contract), whatever OTEL_PROPAGATORS says, and with an
explicit context rather than the ambient one, so it works the same inside async generators and hedged tasks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_KEYS: Final = frozenset((TRACEPARENT, TRACESTATE))
_W3C: Final = TraceContextTextMapPropagator()


def extract_context(metadata: Iterable[tuple[str, str | bytes]] | None) -> Context | None:
    """The caller's trace context from gRPC invocation metadata, or None when it sent none (or a malformed one).

    gRPC lower-cases metadata keys; only the two W3C keys are read, so the cost does not grow with the metadata's
    other entries beyond one comparison each."""
    carrier = {key: value for key, value in metadata or () if key in _KEYS and isinstance(value, str)}
    if TRACEPARENT not in carrier:
        return None
    context = _W3C.extract(carrier)
    # A malformed traceparent extracts to an empty context: treat it as absent, so the call starts a new trace.
    return context if context else None


def caller_trace_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The trace id (32 hex digits) of the caller's `traceparent`; "" when it sent none or a malformed one."""
    context = extract_context(metadata)
    if context is None:
        return ""
    span = get_current_span(context).get_span_context()
    return f"{span.trace_id:032x}" if span.is_valid else ""
