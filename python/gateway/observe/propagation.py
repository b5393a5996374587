"""W3C trace context across the gateway: taken from the caller's gRPC metadata, sent on in upstream HTTP headers.

Always the W3C `traceparent`/`tracestate` format (the issue's contract), whatever OTEL_PROPAGATORS says, and with an
explicit context rather than the ambient one, so it works the same inside async generators and hedged tasks."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_KEYS: Final = frozenset((TRACEPARENT, TRACESTATE))
_W3C: Final = TraceContextTextMapPropagator()
# The W3C header as the propagator reads it (opentelemetry's tracecontext.py): version, trace id, parent id, flags,
# and for versions after 00 anything after.
_TRACEPARENT: Final = re.compile(r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:(-.*)|[ \t]*)$")
_MAX_TRACEPARENT: Final = 512
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


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
    """The trace id (32 hex digits) of the caller's `traceparent`; "" when it sent none or one `extract_context`
    would refuse. Read here rather than through the propagator, which builds a context: 28 µs a call with tracing
    off against 1 to 6 (python -m timeit on a loaded machine; 0.7 µs without the header)."""
    for key, value in metadata or ():
        if key == TRACEPARENT and isinstance(value, str):
            found = _TRACEPARENT.match(value)
            if found is None or len(value) > _MAX_TRACEPARENT:
                return ""
            version, trace_id, span_id, rest = found.groups()
            if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
                return ""
            return trace_id
    return ""
