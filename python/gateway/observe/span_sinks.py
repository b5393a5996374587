"""Where ended calls' spans go: batches leave from a worker thread, so the event loop only appends to a queue.

- `OtlpSink`, the OTLP exporters the settings name (gRPC or http/protobuf): a call's spans are encoded by the Rust
  core when it ends (`gateway._core.encode_span_chunk`, a few µs a span where opentelemetry-python's encoder takes
  ~60), so the queue holds bytes, not Python objects the garbage collector would walk until they are sent (kept as
  tuples, they cost the loop ~50 µs a call in collections: docs/benchmarks.md). A batch's chunks are wrapped in one
  request (`encode_export`) and sent as they are by the OpenTelemetry SDK's own OTLP exporters, which keep doing
  what they do well: endpoints, headers, TLS, compression, timeouts and retries from the OTEL_* variables.
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

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from gateway import __version__
from gateway._core import encode_export, encode_span_chunk
from gateway.observe.spans import SpanData

log = logging.getLogger("gateway.observe")

SCOPE_NAME: Final = "gateway.observe"
MAX_QUEUE_SPANS: Final = 8192
MAX_BATCH_SPANS: Final = 512
"""A batch closes at the first call's chunk that takes it to this many spans or more."""
SCHEDULE_DELAY_S: Final = 1.0
_EXPORT_METHOD: Final = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One batch as OTLP bytes, passed through the SDK exporters in place of their spans."""

    payload: bytes
    count: int


class _BytesStub:
    """The trace service's Export over a channel, taking and returning bytes: a batch already encoded is sent as it
    is, where the generated stub would need it parsed into the SDK's message only to serialize it again (~1 ms of
    the exporter thread's GIL a batch)."""

    def __init__(self, channel: grpc.Channel) -> None:
        # No (de)serializers: bytes in, bytes out.
        self.Export: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(_EXPORT_METHOD)


class _GrpcTransport(GrpcSpanExporter):
    """The SDK's OTLP/gRPC exporter (its channel, credentials, headers, timeout and retries), sending batches already
    encoded."""

    def _initialize_channel_and_stub(self) -> None:
        # Also what the SDK calls to reconnect after UNAVAILABLE: the bytes stub follows every new channel.
        super()._initialize_channel_and_stub()  # type: ignore[no-untyped-call]
        self._client = _BytesStub(self._channel)  # type: ignore[assignment, arg-type]

    def _translate_data(self, data: Any) -> bytes:  # type: ignore[override]  # what _BytesStub sends
        payload: bytes = data.payload
        return payload

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
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()  # (a call's chunk, its spans)
        self._queued = 0
        self._count = threading.Lock()  # _queued and dropped change on the loop's thread and the worker's
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stopping = False
        self.dropped = 0
        self._worker = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._worker.start()

    def add(self, spans: list[SpanData]) -> None:
        count = len(spans)
        with self._count:
            if self._queued + count > MAX_QUEUE_SPANS:
                self.dropped += count
                return
            self._queued += count
            full = self._queued >= MAX_BATCH_SPANS
        try:
            chunk = encode_span_chunk(spans)
        except Exception:  # a bad attribute is a bug to log, never a failed call
            log.exception("encoding %d spans failed; they are dropped", count)
            with self._count:
                self._queued -= count
                self.dropped += count
            return
        self._queue.append((chunk, count))
        if full:
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
            while self._queue and self._export(*self._take()):
                pass
            self._idle.set()
            if self._stopping:
                self._take_all_as_dropped()
                return

    def _take(self) -> tuple[list[bytes], int]:
        """The next batch's chunks and their spans."""
        queue = self._queue
        chunks: list[bytes] = []
        count = 0
        while queue and count < MAX_BATCH_SPANS:
            chunk, spans = queue.popleft()
            chunks.append(chunk)
            count += spans
        with self._count:
            self._queued -= count
        return chunks, count

    def _take_all_as_dropped(self) -> None:
        while self._queue:
            _, count = self._take()
            with self._count:
                self.dropped += count

    def _export(self, chunks: list[bytes], count: int) -> bool:
        """Sends one batch; False when it failed (the batch is dropped)."""
        try:
            payload = encode_export(self._resource, SCOPE_NAME, __version__, chunks)
            if self._transport.send(_Encoded(payload, count)):
                return True
            log.debug("an OTLP export of %d spans failed; they are dropped", count)
        except Exception:  # a worker that dies would silently stop every export after it
            log.exception("exporting %d spans failed; they are dropped", count)
        with self._count:
            self.dropped += count
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
