"""The pipeline's facade over spans: one server span per gRPC call, a child per pipeline stage and per provider attempt,
attributes set from the gateway's own objects.

With tracing off (`CallTracer(None)`), `start_call` returns one shared `CallSpan` whose methods do nothing, and
`stage()` returns one shared no-op context manager: a call costs a few attribute lookups and method calls, no
allocation (docs/benchmarks/observe.md). Sampled-out calls cost little more: their setters return at the first line.

Parentage is explicit (each child is started from its call's context, never from the ambient one), so spans nest
correctly across async generators, hedged tasks and `asyncio.to_thread`.

    call = tracer.start_call("Chat", metadata, request_id=rid)
    try:
        with call.stage("authenticate"):
            key = ...
        call.set_identity(team=key.team, key_id=key.id)
        call.set_request(request)
        attempt = call.start_attempt(provider="openai", model="gpt-4o", attempt=0, retry=0)
        attempt.inject(upstream.headers)
        ...
        attempt.end(outcome="ok")
        call.set_result(result, usage, cost_usd=cost)
    except BaseException as err:
        call.end(error=err, status_code=code_name)
        raise
    else:
        call.end()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from gateway.observe import attributes as attr
from gateway.observe.propagation import extract_context, inject_headers

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from gateway.chat import ChatRequest, ChatResult, Usage

_SERVICE: Final = "llmgateway.v1.Gateway"
_TRACER_NAME: Final = "gateway.observe"
_OK: Final = "OK"


class StageSpan:
    """A pipeline stage's span as a context manager; the no-op instance is shared and stateless."""

    __slots__ = ()

    def __enter__(self) -> StageSpan:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        return None

    def set(self, name: str, value: str | int | float | bool) -> None:
        """One attribute on the stage's span; `name` should be one of `gateway.observe.attributes`."""


class AttemptSpan:
    """One provider attempt (a CLIENT span, child of the call); the no-op instance is shared and stateless."""

    __slots__ = ()

    def inject(self, headers: dict[str, str]) -> None:
        """Adds this attempt's `traceparent`/`tracestate` to the upstream request's headers."""

    def end(
        self,
        *,
        outcome: str = "ok",
        code: str = "",
        result: ChatResult | None = None,
        usage: Usage | None = None,
    ) -> None:
        """outcome: ok, error or cancelled (a hedge that lost); code: the gRPC status name of a failure."""


class CallSpan:
    """One gRPC call's server span. This base class is the no-op used when tracing is off; `_RecordingCall` records."""

    __slots__ = ()

    @property
    def context(self) -> Context | None:
        """The OTel context holding this call's span (None when tracing is off)."""
        return None

    def stage(self, name: str) -> StageSpan:
        """A child span for one pipeline stage: `with call.stage("guardrails.input"): ...`."""
        return _NOOP_STAGE

    def start_attempt(
        self, *, provider: str, model: str, attempt: int, retry: int = 0, hedged: bool = False
    ) -> AttemptSpan:
        return _NOOP_ATTEMPT

    def set_request(self, request: ChatRequest, *, streaming: bool = False) -> None:
        """The GenAI request attributes: operation, requested model or route, max_tokens, temperature, top_p."""

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
        result: ChatResult | None,
        usage: Usage | None,
        cost_usd: float,
        attempts: int = 1,
    ) -> None:
        """The serving target, the GenAI response and usage attributes, the call's cost and its attempt count."""

    def first_chunk(self) -> None:
        """Marks the first chunk sent to a streaming caller (an event on the call span)."""

    def record_content(self, *, prompt: str, answer: str) -> None:
        """Prompt and answer text, only when the tracer was built with record_content=True. The caller passes text
        already redacted as the team's policy asks; nothing here redacts."""

    def end(self, *, error: BaseException | None = None, status_code: str = _OK, reason: str = "") -> None:
        """Ends the call span; `status_code` is the gRPC status name the caller got, `reason` the gateway's."""


_NOOP_STAGE: Final = StageSpan()
_NOOP_ATTEMPT: Final = AttemptSpan()
NOOP_CALL: Final = CallSpan()


class CallTracer:
    """Starts call spans from a TracerProvider, or hands out the shared no-op when the provider is None."""

    __slots__ = ("_record_content", "_tracer")

    def __init__(self, provider: TracerProvider | None, *, record_content: bool = False) -> None:
        self._tracer = provider.get_tracer(_TRACER_NAME) if provider is not None else None
        self._record_content = record_content

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def start_call(
        self,
        method: str,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        *,
        request_id: str = "",
    ) -> CallSpan:
        """A server span `llmgateway.v1.Gateway/<method>`, continuing the caller's W3C trace when the metadata
        carries one."""
        tracer = self._tracer
        if tracer is None:
            return NOOP_CALL
        parent = extract_context(metadata)
        span = tracer.start_span(
            f"{_SERVICE}/{method}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={attr.RPC_SYSTEM: "grpc", attr.RPC_SERVICE: _SERVICE, attr.RPC_METHOD: method},
        )
        if request_id and span.is_recording():
            span.set_attribute(attr.REQUEST_ID, request_id)
        return _RecordingCall(tracer, span, self._record_content)


class _RecordingStage(StageSpan):
    __slots__ = ("_name", "_parent", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, parent: Context, name: str) -> None:
        self._tracer = tracer
        self._parent = parent
        self._name = name
        self._span: Span | None = None

    def __enter__(self) -> StageSpan:
        self._span = self._tracer.start_span(f"gateway.{self._name}", context=self._parent)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        span = self._span
        if span is None:
            return
        if error is not None:
            _mark_error(span, error, "")
        span.end()

    def set(self, name: str, value: str | int | float | bool) -> None:
        if self._span is not None:
            self._span.set_attribute(name, value)


class _RecordingAttempt(AttemptSpan):
    __slots__ = ("_context", "_span")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._context = trace.set_span_in_context(span)

    def inject(self, headers: dict[str, str]) -> None:
        inject_headers(headers, self._context)

    def end(
        self,
        *,
        outcome: str = "ok",
        code: str = "",
        result: ChatResult | None = None,
        usage: Usage | None = None,
    ) -> None:
        span = self._span
        if span.is_recording():
            span.set_attribute(attr.ATTEMPT_OUTCOME, outcome)
            if code:
                span.set_attribute(attr.ERROR_TYPE, code)
            if outcome == "error":
                span.set_status(Status(StatusCode.ERROR, code or None))
            _set_response(span, result, usage)
        span.end()


class _RecordingCall(CallSpan):
    __slots__ = ("_content", "_context", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, span: Span, record_content: bool) -> None:
        self._tracer = tracer
        self._span = span
        self._context = trace.set_span_in_context(span)
        self._content = record_content

    @property
    def context(self) -> Context | None:
        return self._context

    def stage(self, name: str) -> StageSpan:
        return _RecordingStage(self._tracer, self._context, name)

    def start_attempt(
        self, *, provider: str, model: str, attempt: int, retry: int = 0, hedged: bool = False
    ) -> AttemptSpan:
        span = self._tracer.start_span(
            f"{attr.OPERATION_CHAT} {model}",
            context=self._context,
            kind=SpanKind.CLIENT,
            attributes={
                attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
                attr.GEN_AI_PROVIDER_NAME: provider,
                attr.GEN_AI_REQUEST_MODEL: model,
                attr.TARGET: f"{provider}/{model}",
                attr.ATTEMPT: attempt,
                attr.RETRY: retry,
                attr.HEDGED: hedged,
            },
        )
        return _RecordingAttempt(span)

    def set_request(self, request: ChatRequest, *, streaming: bool = False) -> None:
        span = self._span
        if not span.is_recording():
            return
        values: dict[str, Any] = {
            attr.GEN_AI_OPERATION_NAME: attr.OPERATION_CHAT,
            attr.GEN_AI_REQUEST_MODEL: request.model,
            attr.STREAMING: streaming,
        }
        if request.max_tokens is not None:
            values[attr.GEN_AI_REQUEST_MAX_TOKENS] = request.max_tokens
        if request.temperature is not None:
            values[attr.GEN_AI_REQUEST_TEMPERATURE] = request.temperature
        if request.top_p is not None:
            values[attr.GEN_AI_REQUEST_TOP_P] = request.top_p
        span.set_attributes(values)

    def set_identity(self, *, team: str, key_id: str) -> None:
        if self._span.is_recording():
            self._span.set_attributes({attr.TEAM: team, attr.KEY_ID: key_id})

    def set_route(self, route: str) -> None:
        if self._span.is_recording():
            self._span.set_attribute(attr.ROUTE, route)

    def set_cache(self, *, hit: bool, kind: str) -> None:
        if self._span.is_recording():
            self._span.set_attributes({attr.CACHE_HIT: hit, attr.CACHE_KIND: kind})

    def set_guardrails(self, actions: Iterable[Mapping[str, object]]) -> None:
        span = self._span
        if not span.is_recording():
            return
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
            span.set_attributes(
                {attr.GUARDRAIL_TYPES: sorted(types), attr.GUARDRAIL_ACTIONS: described, attr.GUARDRAIL_COUNT: count}
            )

    def set_result(
        self,
        *,
        provider: str,
        model: str,
        result: ChatResult | None,
        usage: Usage | None,
        cost_usd: float,
        attempts: int = 1,
    ) -> None:
        span = self._span
        if not span.is_recording():
            return
        span.set_attributes(
            {
                attr.GEN_AI_PROVIDER_NAME: provider,
                attr.TARGET: f"{provider}/{model}",
                attr.COST_USD: cost_usd,
                attr.ATTEMPTS: attempts,
            }
        )
        _set_response(span, result, usage)

    def first_chunk(self) -> None:
        if self._span.is_recording():
            self._span.add_event("first_chunk")

    def record_content(self, *, prompt: str, answer: str) -> None:
        if self._content and self._span.is_recording():
            self._span.set_attributes({attr.GEN_AI_INPUT_MESSAGES: prompt, attr.GEN_AI_OUTPUT_MESSAGES: answer})

    def end(self, *, error: BaseException | None = None, status_code: str = _OK, reason: str = "") -> None:
        span = self._span
        if span.is_recording():
            span.set_attribute(attr.RPC_GRPC_STATUS_CODE, status_code)
            if reason:
                span.set_attribute(attr.REASON, reason)
            if error is not None or status_code != _OK:
                _mark_error(span, error, status_code)
        span.end()


def _set_response(span: Span, result: ChatResult | None, usage: Usage | None) -> None:
    values: dict[str, Any] = {}
    if result is not None:
        if result.upstream_model:
            values[attr.GEN_AI_RESPONSE_MODEL] = result.upstream_model
        if result.upstream_id:
            values[attr.GEN_AI_RESPONSE_ID] = result.upstream_id
        if result.finish_reason:
            values[attr.GEN_AI_RESPONSE_FINISH_REASONS] = (result.finish_reason,)
        if usage is None:
            usage = result.usage
    if usage is not None:
        values[attr.GEN_AI_USAGE_INPUT_TOKENS] = usage.prompt_tokens
        values[attr.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.completion_tokens
        if usage.cached_prompt_tokens:
            values[attr.CACHED_INPUT_TOKENS] = usage.cached_prompt_tokens
    if values:
        span.set_attributes(values)


def _mark_error(span: Span, error: BaseException | None, status_code: str) -> None:
    """Error type and status, never the exception's message: it may quote the caller's input."""
    error_type = status_code or (type(error).__name__ if error is not None else "")
    if error is not None and not status_code:
        error_type = type(error).__name__
    span.set_attribute(attr.ERROR_TYPE, error_type or "error")
    span.set_status(Status(StatusCode.ERROR, error_type or None))
