"""The pipeline's facade over traces: one server span per call, with a child per provider attempt and per stage
that waited (a cache lookup, a strict audit commit), and the other stages' timings as attributes of the call span.

A call's spans are plain data gathered while it runs and built once, when it ends (`SpanData`, the layout
`gateway._core.encode_spans` takes): no OpenTelemetry span object lives through a call, no lock is taken per
attribute, and the sink (observe/tracing.py) encodes and exports whole batches off the event loop.

- Tracing off: `start_call` returns the shared no-op `NOOP_CALL`; a call costs a few method calls, no allocation.
- Sampled out: a small object that only carries the trace on to providers (`traceparent` with the sampled flag
  clear), so a caller's sampling decision holds downstream.
- Sampled in: ids are drawn from `random` (unique, not secret), the start and end are wall-clock nanoseconds.

Never an attribute for a key, a secret or the caller's text, except prompt and answer text through `record_content`,
which needs `observe.tracing.record_content` and is given text the team's body policy already redacted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol

from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import get_current_span

from gateway.embeddings import EmbedRequest
from gateway.observe import attributes as attr
from gateway.observe.propagation import extract_context

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

    from gateway.chat import ChatRequest, Usage

_SERVICE: Final = "llmgateway.v1.Gateway"
_OK: Final = "OK"
KIND_INTERNAL: Final = 1
KIND_SERVER: Final = 2
KIND_CLIENT: Final = 3
STATUS_UNSET: Final = 0
STATUS_ERROR: Final = 2
_SAMPLED: Final = 1

AttributeValue = str | bool | int | float | tuple[str, ...]
Attributes = list[tuple[str, AttributeValue]]
Event = tuple[str, int, Attributes]
SpanData = tuple[int, int, int, str, int, int, int, Attributes, list[Event], int, str, str, int]
"""(trace_id, span_id, parent_span_id or 0, name, kind, start_ns, end_ns, attributes, events, status_code,
status_message, trace_state, flags): OTLP's numbering for kind and status."""


class SpanSink(Protocol):
    """Where ended calls' spans go (observe/tracing.py); `add` must not block the event loop."""

    @property
    def sampler(self) -> Sampler: ...

    def add(self, spans: list[SpanData]) -> None: ...


class StageSpan:
    """A stage's child span as a context manager; the no-op instance is shared and stateless."""

    __slots__ = ()

    def __enter__(self) -> StageSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        return None


class AttemptSpan:
    """One provider attempt (a CLIENT span, child of the call); the no-op instance is shared and stateless."""

    __slots__ = ()

    def inject(self, headers: dict[str, str]) -> None:
        """Adds this attempt's `traceparent`/`tracestate` to the upstream request's headers."""

    def end(self, *, outcome: str = "ok", code: str = "", usage: Usage | None = None) -> None:
        """outcome: ok, error or cancelled (a hedge that lost); code: the status name of a failure."""


class CallSpan:
    """One call's server span. This base class is the no-op used when tracing is off; `_RecordingCall` records."""

    __slots__ = ()

    @property
    def recording(self) -> bool:
        """Whether this call is sampled: only then are stage timings worth taking."""
        return False

    @property
    def audit_trace_id(self) -> str:
        """The trace id (32 hex digits) the call's audit record keeps: the trace its spans are exported to, or for a
        call sampled out, its caller's trace (the caller's spans may be there); "" for a call in neither. With
        tracing off every call gets this no-op, and the caller's `traceparent` is read apart (observe stage)."""
        return ""

    def stage(self, name: str) -> StageSpan:
        """A child span for one stage that waited: `with call.stage("cache"): await ...`."""
        return _NOOP_STAGE

    def stage_time(self, name: str, ns: int) -> None:
        """How long a stage that did not wait took, as an attribute of the call span."""

    def stage_failed(self, name: str, started: int, error: BaseException) -> None:
        """A stage that did not wait but raised (refused the call, say): a child span from `started`
        (`time.perf_counter_ns()`) to now, with the error's type. Stages that neither wait nor fail, most of a call's,
        get no object and no child: only `stage_time`."""

    def start_attempt(
        self, *, provider: str, model: str, attempt: int, retry: int = 0, hedged: bool = False
    ) -> AttemptSpan:
        return _NOOP_ATTEMPT

    def set_request(self, request: ChatRequest | EmbedRequest, *, streaming: bool = False) -> None:
        """The GenAI request attributes: operation, requested model or route, max_tokens, temperature, top_p (chat);
        the number of inputs and the encoding (embeddings)."""

    def set_identity(self, *, team: str, key_id: str) -> None:
        """The caller's team and key id (the id, never the key)."""

    def set_route(self, route: str) -> None:
        """The route (or model) the router resolved the request to."""

    def set_cache(self, *, hit: bool, kind: str) -> None:
        """A cache lookup's outcome; kind: exact or semantic."""

    def set_guardrails(self, actions: Iterable[Mapping[str, object]]) -> None:
        """Guardrail actions as the audit record holds them: dicts with type, kind, action, count."""

    def set_result(
        self,
        *,
        provider: str,
        model: str,
        usage: Usage | None,
        cost_usd: float,
        attempts: int = 1,
        upstream_model: str = "",
        upstream_id: str = "",
        finish_reason: str = "",
    ) -> None:
        """The serving target, the GenAI response and usage attributes, the call's cost and its attempt count."""

    def first_chunk(self) -> None:
        """Marks the first chunk sent to a streaming caller (an event on the call span)."""

    def record_content(self, *, prompt: str, answer: str) -> None:
        """Prompt and answer text, only when the tracer was built with record_content=True. The caller passes text
        already redacted as the team's policy asks; nothing here redacts."""

    def end(self, *, error: BaseException | None = None, status_code: str = _OK, reason: str = "") -> None:
        """Ends the call span; `status_code` is the status name the caller got, `reason` the gateway's."""


_NOOP_STAGE: Final = StageSpan()
_NOOP_ATTEMPT: Final = AttemptSpan()
NOOP_CALL: Final = CallSpan()


class CallTracer:
    """Starts call spans into a sink, or hands out the shared no-op when there is none."""

    __slots__ = ("_record_content", "_sink")

    def __init__(self, sink: SpanSink | None, *, record_content: bool = False) -> None:
        self._sink = sink
        self._record_content = record_content

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    @property
    def record_content(self) -> bool:
        return self._record_content

    def background(self, name: str, attributes: Attributes) -> AbstractContextManager[None]:
        """A root span of work no caller waits for (a batch's poll step), sampled on its own; exported when it ends,
        with the exception's type if one ends it. Tracing off: a no-op."""
        sink = self._sink
        if sink is None:
            return nullcontext()
        trace_id = random.getrandbits(128) or 1
        if sink.sampler.should_sample(None, trace_id, name).decision is not Decision.RECORD_AND_SAMPLE:
            return nullcontext()
        return _BackgroundSpan(sink, trace_id, name, attributes)

    def start_call(
        self,
        method: str,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        *,
        request_id: str = "",
        api: str = "grpc",
    ) -> CallSpan:
        """A server span, continuing the caller's W3C trace when the metadata carries one; the sink's sampler decides,
        respecting the caller's choice under a parent-based sampler. `api` is the front door: a gRPC call's span is
        `llmgateway.v1.Gateway/<method>` with rpc.* attributes, an HTTP call's `<verb> <route>` (its `method`, e.g.
        `POST /v1/chat/completions`) with http.* attributes, as OpenTelemetry's conventions name each."""
        sink = self._sink
        if sink is None:
            return NOOP_CALL
        parent = extract_context(metadata)
        parent_span = get_current_span(parent).get_span_context() if parent is not None else None
        if parent_span is not None and parent_span.is_valid:
            trace_id, parent_id = parent_span.trace_id, parent_span.span_id
            trace_state = parent_span.trace_state.to_header()
        else:
            trace_id, parent_id, trace_state = random.getrandbits(128) or 1, 0, ""
        name = method if api == "http" else f"{_SERVICE}/{method}"
        if sink.sampler.should_sample(parent, trace_id, name).decision is not Decision.RECORD_AND_SAMPLE:
            return _PropagatingCall(trace_id, trace_state, continued=parent_id != 0)
        return _RecordingCall(
            sink, trace_id, parent_id, trace_state, name, method, request_id, self._record_content, api
        )


class _BackgroundSpan:
    __slots__ = ("_attributes", "_name", "_sink", "_start", "_trace_id")

    def __init__(self, sink: SpanSink, trace_id: int, name: str, attributes: Attributes) -> None:
        self._sink = sink
        self._trace_id = trace_id
        self._name = name
        self._attributes = attributes

    def __enter__(self) -> None:
        self._start = time.time_ns()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        status, message = STATUS_UNSET, ""
        attributes = list(self._attributes)
        if error is not None:
            message = type(error).__name__  # never its text: a provider's message may quote the caller's input
            attributes.append((attr.ERROR_TYPE, message))
            status = STATUS_ERROR
        span_id = random.getrandbits(64) or 1
        self._sink.add(
            [
                (
                    self._trace_id,
                    span_id,
                    0,
                    self._name,
                    KIND_INTERNAL,
                    self._start,
                    time.time_ns(),
                    attributes,
                    [],
                    status,
                    message,
                    "",
                    _SAMPLED,
                )
            ]
        )


def _traceparent(trace_id: int, span_id: int, flags: int) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"


class _PropagatingAttempt(AttemptSpan):
    __slots__ = ("_call",)

    def __init__(self, call: _PropagatingCall) -> None:
        self._call = call

    def inject(self, headers: dict[str, str]) -> None:
        call = self._call
        headers["traceparent"] = _traceparent(call.trace_id, random.getrandbits(64) or 1, 0)
        if call.trace_state:
            headers["tracestate"] = call.trace_state


class _PropagatingCall(CallSpan):
    """A sampled-out call: records nothing, carries the trace (unsampled) on to providers."""

    __slots__ = ("continued", "trace_id", "trace_state")

    def __init__(self, trace_id: int, trace_state: str, *, continued: bool) -> None:
        self.trace_id = trace_id
        self.trace_state = trace_state
        self.continued = continued
        """The trace is the caller's (it sent a `traceparent`), not one started here."""

    @property
    def audit_trace_id(self) -> str:
        return f"{self.trace_id:032x}" if self.continued else ""

    def start_attempt(
        self, *, provider: str, model: str, attempt: int, retry: int = 0, hedged: bool = False
    ) -> AttemptSpan:
        return _PropagatingAttempt(self)


class _RecordingStage(StageSpan):
    __slots__ = ("_call", "_name", "_start")

    def __init__(self, call: _RecordingCall, name: str) -> None:
        self._call = call
        self._name = name
        self._start = 0

    def __enter__(self) -> StageSpan:
        self._start = time.time_ns()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._call.stage_child(self._name, self._start, error)


class _RecordingAttempt(AttemptSpan):
    __slots__ = ("_attributes", "_call", "_name", "_span_id", "_start")

    def __init__(self, call: _RecordingCall, name: str, attributes: Attributes) -> None:
        self._call = call
        self._name = name
        self._attributes = attributes
        self._span_id = random.getrandbits(64) or 1
        self._start = time.time_ns()

    def inject(self, headers: dict[str, str]) -> None:
        call = self._call
        headers["traceparent"] = _traceparent(call.trace_id, self._span_id, _SAMPLED)
        if call.trace_state:
            headers["tracestate"] = call.trace_state

    def end(self, *, outcome: str = "ok", code: str = "", usage: Usage | None = None) -> None:
        attributes = self._attributes
        attributes.append((attr.ATTEMPT_OUTCOME, outcome))
        status, message = STATUS_UNSET, ""
        if code:
            attributes.append((attr.ERROR_TYPE, code))
        if outcome == "error":
            status, message = STATUS_ERROR, code
        if usage is not None:
            attributes += _usage(usage)
        self._call.child(self._name, KIND_CLIENT, self._start, attributes, status, message, span_id=self._span_id)


class _RecordingCall(CallSpan):
    __slots__ = (
        "_attributes",
        "_children",
        "_content",
        "_events",
        "_grpc",
        "_name",
        "_parent_id",
        "_sink",
        "_span_id",
        "_start",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        sink: SpanSink,
        trace_id: int,
        parent_id: int,
        trace_state: str,
        name: str,
        method: str,
        request_id: str,
        record_content: bool,
        api: str,
    ) -> None:
        self._sink = sink
        self.trace_id = trace_id
        self._parent_id = parent_id
        self.trace_state = trace_state
        self._span_id = random.getrandbits(64) or 1
        self._name = name
        self._start = time.time_ns()
        self._content = record_content
        self._grpc = api != "http"
        self._attributes: dict[str, AttributeValue] = {attr.API: api}
        if self._grpc:
            self._attributes |= {attr.RPC_SYSTEM: "grpc", attr.RPC_SERVICE: _SERVICE, attr.RPC_METHOD: method}
        else:
            verb, _, route = method.partition(" ")
            self._attributes |= {attr.HTTP_REQUEST_METHOD: verb, attr.HTTP_ROUTE: route}
        if request_id:
            self._attributes[attr.REQUEST_ID] = request_id
        self._events: list[Event] = []
        self._children: list[SpanData] = []

    @property
    def recording(self) -> bool:
        return True

    @property
    def audit_trace_id(self) -> str:
        return f"{self.trace_id:032x}"

    def child(
        self,
        name: str,
        kind: int,
        start: int,
        attributes: Attributes,
        status: int = STATUS_UNSET,
        message: str = "",
        *,
        span_id: int = 0,
    ) -> None:
        self._children.append(
            (
                self.trace_id,
                span_id or random.getrandbits(64) or 1,
                self._span_id,
                name,
                kind,
                start,
                time.time_ns(),
                attributes,
                [],
                status,
                message,
                self.trace_state,
                _SAMPLED,
            )
        )

    def stage(self, name: str) -> StageSpan:
        return _RecordingStage(self, name)

    def stage_time(self, name: str, ns: int) -> None:
        self._attributes[attr.STAGE_US + name] = ns // 1000

    def stage_failed(self, name: str, started: int, error: BaseException) -> None:
        self.stage_child(name, time.time_ns() - (time.perf_counter_ns() - started), error)

    def stage_child(self, name: str, start: int, error: BaseException | None) -> None:
        """A stage's child span from `start` (epoch ns) to now."""
        attributes: Attributes = []
        status = STATUS_UNSET
        message = ""
        if error is not None:
            # The exception's type, never its message: it may quote the caller's input.
            message = type(error).__name__
            attributes.append((attr.ERROR_TYPE, message))
            status = STATUS_ERROR
        self.child(f"gateway.{name}", KIND_INTERNAL, start, attributes, status, message)

    def start_attempt(
        self, *, provider: str, model: str, attempt: int, retry: int = 0, hedged: bool = False
    ) -> AttemptSpan:
        return _RecordingAttempt(
            self,
            f"{attr.OPERATION_CHAT} {model}",
            [
                (attr.GEN_AI_OPERATION_NAME, attr.OPERATION_CHAT),
                (attr.GEN_AI_PROVIDER_NAME, provider),
                (attr.GEN_AI_REQUEST_MODEL, model),
                (attr.TARGET, f"{provider}/{model}"),
                (attr.ATTEMPT, attempt),
                (attr.RETRY, retry),
                (attr.HEDGED, hedged),
            ],
        )

    def set_request(self, request: ChatRequest | EmbedRequest, *, streaming: bool = False) -> None:
        values = self._attributes
        values[attr.GEN_AI_REQUEST_MODEL] = request.model
        if isinstance(request, EmbedRequest):
            values[attr.GEN_AI_OPERATION_NAME] = attr.OPERATION_EMBEDDINGS
            values[attr.EMBEDDING_INPUTS] = len(request.inputs)
            values[attr.GEN_AI_REQUEST_ENCODING_FORMATS] = (request.encoding.value,)
            return
        values[attr.GEN_AI_OPERATION_NAME] = attr.OPERATION_CHAT
        values[attr.STREAMING] = streaming
        if request.max_tokens is not None:
            values[attr.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
        if request.temperature is not None:
            values[attr.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
        if request.top_p is not None:
            values[attr.GEN_AI_REQUEST_TOP_P] = request.top_p

    def set_identity(self, *, team: str, key_id: str) -> None:
        self._attributes[attr.TEAM] = team
        self._attributes[attr.KEY_ID] = key_id

    def set_route(self, route: str) -> None:
        self._attributes[attr.ROUTE] = route

    def set_cache(self, *, hit: bool, kind: str) -> None:
        self._attributes[attr.CACHE_HIT] = hit
        self._attributes[attr.CACHE_KIND] = kind

    def set_guardrails(self, actions: Iterable[Mapping[str, object]]) -> None:
        types: set[str] = set()
        described: list[str] = []
        count = 0
        for action in actions:
            check = str(action.get("type", ""))
            types.add(check)
            described.append(f"{check}/{action.get('kind', '')}/{action.get('action', '')}")
            raw = action.get("count", 1)
            count += raw if isinstance(raw, int) else 1
        if described:
            self._attributes[attr.GUARDRAIL_TYPES] = tuple(sorted(types))
            self._attributes[attr.GUARDRAIL_ACTIONS] = tuple(described)
            self._attributes[attr.GUARDRAIL_COUNT] = count

    def set_result(
        self,
        *,
        provider: str,
        model: str,
        usage: Usage | None,
        cost_usd: float,
        attempts: int = 1,
        upstream_model: str = "",
        upstream_id: str = "",
        finish_reason: str = "",
    ) -> None:
        values = self._attributes
        values[attr.GEN_AI_PROVIDER_NAME] = provider
        values[attr.TARGET] = f"{provider}/{model}"
        values[attr.COST_USD] = cost_usd
        values[attr.ATTEMPTS] = attempts
        if upstream_model:
            values[attr.GEN_AI_RESPONSE_MODEL] = upstream_model
        if upstream_id:
            values[attr.GEN_AI_RESPONSE_ID] = upstream_id
        if finish_reason:
            values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = (finish_reason,)
        if usage is not None:
            values.update(_usage(usage))

    def first_chunk(self) -> None:
        self._events.append(("first_chunk", time.time_ns(), []))

    def record_content(self, *, prompt: str, answer: str) -> None:
        if self._content:
            self._attributes[attr.GEN_AI_INPUT_MESSAGES] = prompt
            self._attributes[attr.GEN_AI_OUTPUT_MESSAGES] = answer

    def end(self, *, error: BaseException | None = None, status_code: str = _OK, reason: str = "") -> None:
        values = self._attributes
        if self._grpc:
            values[attr.RPC_GRPC_STATUS_CODE] = status_code
        status, message = STATUS_UNSET, ""
        if reason:
            values[attr.REASON] = reason
        if error is not None or status_code != _OK:
            # The error's type or status, never an exception's message: it may quote the caller's input.
            message = status_code if status_code != _OK else type(error).__name__
            values[attr.ERROR_TYPE] = message or "error"
            status = STATUS_ERROR
        server: SpanData = (
            self.trace_id,
            self._span_id,
            self._parent_id,
            self._name,
            KIND_SERVER,
            self._start,
            time.time_ns(),
            list(values.items()),
            self._events,
            status,
            message,
            self.trace_state,
            _SAMPLED,
        )
        self._children.append(server)
        self._sink.add(self._children)


def _usage(usage: Usage) -> list[tuple[str, Any]]:
    values: list[tuple[str, Any]] = [
        (attr.GEN_AI_USAGE_INPUT_TOKENS, usage.prompt_tokens),
        (attr.GEN_AI_USAGE_OUTPUT_TOKENS, usage.completion_tokens),
    ]
    if usage.cached_prompt_tokens:
        values.append((attr.CACHED_INPUT_TOKENS, usage.cached_prompt_tokens))
    return values
