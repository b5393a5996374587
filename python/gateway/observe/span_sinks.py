"""Where ended calls' spans go: batches leave from a worker thread, so the event loop only appends to a queue.

- `OtlpSink`, the OTLP exporters the settings name (gRPC or http/protobuf): batches are encoded by the Rust core
  (`gateway._core.encode_spans`, a few µs a span where opentelemetry-python's encoder takes ~60) and sent by the
  OpenTelemetry SDK's own OTLP exporters, which keep doing what they do well: endpoints, headers, TLS, compression,
  timeouts and retries from the OTEL_* variables.
- `SdkSink`, any other `SpanExporter` (console, a test's in-memory one, an embedding process's own): each span is
  rebuilt as the SDK's `ReadableSpan` and handed to a `BatchSpanProcessor`.

A queue that fills (a collector down or slow) drops new spans and counts them; the request path never waits.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway import __version__
from gateway._core import encode_spans
from gateway.observe.spans import SpanData

log = logging.getLogger("gateway.observe")

SCOPE_NAME: Final = "gateway.observe"
MAX_QUEUE_SPANS: Final = 8192
MAX_BATCH_SPANS: Final = 512
SCHEDULE_DELAY_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One batch as OTLP bytes, passed through the SDK exporters in place of their spans."""

    payload: bytes
    count: int


class _GrpcTransport(GrpcSpanExporter):
    """The SDK's OTLP/gRPC exporter, sending batches already encoded."""

    def _translate_data(self, data: Any) -> ExportTraceServiceRequest:
        return ExportTraceServiceRequest.FromString(data.payload)

    def _count_data(self, data: Any) -> int:
        count: int = data.count
        return count

    def send(self, batch: _Encoded) -> bool:
        return self._export(batch) is SpanExportResult.SUCCESS  # type: ignore[arg-type]


class _HttpTransport(HttpSpanExporter):
    """The SDK's OTLP/HTTP exporter, sending batches already encoded."""

    def send(self, batch: _Encoded) -> bool:
        result = self._client.export(batch.payload)
        return bool(result.success)


Transport = _GrpcTransport | _HttpTransport


def otlp_transport(protocol: str, endpoint: str, timeout_s: float) -> Transport:
    """Constructing one opens no connection."""
    if protocol == "grpc":
        # The gRPC exporter takes host:port or a URL; an http:// URL means plaintext, as the spec says.
        return _GrpcTransport(endpoint=endpoint, insecure=endpoint.startswith("http://"), timeout=timeout_s)
    # The spec's base endpoint gets the per-signal path appended; the exporter only does that for its own env read.
    endpoint = endpoint.rstrip("/")
    return _HttpTransport(
        endpoint=endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces", timeout=timeout_s
    )


class OtlpSink:
    def __init__(self, transport: Transport, sampler: Sampler, resource: dict[str, str]) -> None:
        self._transport = transport
        self.sampler = sampler
        # The SDK's resource, so both sinks describe the process alike (service.name and telemetry.sdk.*).
        self._resource = [
            (key, value)
            for key, value in Resource.create(resource).attributes.items()
            if isinstance(value, str | bool | int | float)
        ]
        self._queue: collections.deque[SpanData] = collections.deque()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self.dropped = 0
        self._worker = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._worker.start()

    def add(self, spans: list[SpanData]) -> None:
        queue = self._queue
        if len(queue) + len(spans) > MAX_QUEUE_SPANS:
            self.dropped += len(spans)
            return
        queue.extend(spans)
        if len(queue) >= MAX_BATCH_SPANS:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self._idle.clear()
        self._wake.set()
        return self._idle.wait(timeout_millis / 1000)

    def shutdown(self) -> None:
        self._stopping = True
        self._wake.set()
        self._worker.join()
        self._transport.shutdown()

    def _run(self) -> None:
        while True:
            self._wake.wait(SCHEDULE_DELAY_S)
            self._wake.clear()
            # At most one failed export per wake-up: a collector that is down costs one timeout, not one per batch.
            while self._queue and self._export(self._take()):
                pass
            self._idle.set()
            if self._stopping:
                self.dropped += len(self._queue)
                self._queue.clear()
                return

    def _take(self) -> list[SpanData]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(len(queue), MAX_BATCH_SPANS))]

    def _export(self, batch: list[SpanData]) -> bool:
        """Sends one batch; False when it failed (the batch is dropped)."""
        try:
            payload = encode_spans(self._resource, SCOPE_NAME, __version__, batch)
            if self._transport.send(_Encoded(payload, len(batch))):
                return True
            log.debug("an OTLP export of %d spans failed; they are dropped", len(batch))
        except Exception:  # a worker that dies would silently stop every export after it
            log.exception("encoding or exporting %d spans failed; they are dropped", len(batch))
        self.dropped += len(batch)
        return False


class SdkSink:
    def __init__(self, exporter: SpanExporter, sampler: Sampler, resource: dict[str, str], timeout_s: float) -> None:
        self.sampler = sampler
        self._resource = Resource.create(resource)
        self._scope = InstrumentationScope(SCOPE_NAME, __version__)
        self._processor = BatchSpanProcessor(exporter, export_timeout_millis=timeout_s * 1000)

    def add(self, spans: list[SpanData]) -> None:
        for span in spans:
            self._processor.on_end(self._readable(span))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._processor.shutdown()  # type: ignore[no-untyped-call]

    def _readable(self, span: SpanData) -> ReadableSpan:
        trace_id, span_id, parent_id, name, kind, start, end, attributes, events, status, message, state, flags = span
        trace_state = TraceState.from_header([state]) if state else TraceState()
        context = SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state)
        parent = SpanContext(trace_id, parent_id, True, TraceFlags(flags), trace_state) if parent_id else None
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=dict(attributes),
            events=tuple(Event(n, dict(a), t) for n, t, a in events),
            kind=SpanKind(kind - 1),  # OTLP counts from 1 (unspecified is 0), the SDK's enum from 0
            status=Status(StatusCode(status), message or None) if status else Status(StatusCode.UNSET),
            start_time=start,
            end_time=end,
            instrumentation_scope=self._scope,
        )
