"""The span facade: the tree and attributes of a call as the SDK's in-memory exporter sees them through the SDK
sink (the OTLP sink's encoding is tested in tests/observe/test_span_sinks.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON
from opentelemetry.trace import SpanKind, StatusCode

from gateway.chat import ChatRequest, Message, Usage
from gateway.observe import attributes as attr
from gateway.observe.span_sinks import SdkSink
from gateway.observe.spans import NOOP_CALL, CallTracer

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
PROMPT = "my card is 4111 1111 1111 1111, summarise the merger"
ANSWER = "The merger of ACME and Zeus closes in May."


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[SdkSink]:
    sink = SdkSink(exporter, DEFAULT_ON, {}, 5.0)
    yield sink
    sink.shutdown()


def finished(sink: SdkSink, exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    assert sink.force_flush(5_000)
    assert sink.force_flush(5_000)
    return exporter.get_finished_spans()


def _request() -> ChatRequest:
    return ChatRequest(model="smart", messages=[Message("user", PROMPT)], max_tokens=256, temperature=0.2, top_p=0.9)


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def _run_retried_call(tracer: CallTracer, metadata: list[tuple[str, str | bytes]]) -> dict[str, str]:
    """A call that authenticates, waits on the cache, fails once on openai, then succeeds on anthropic."""
    call = tracer.start_call("Chat", metadata, request_id="0190abc")
    call.stage_time("authenticate", 12_345)
    call.set_identity(team="search", key_id="key_123")
    call.set_request(_request())
    call.set_guardrails(
        [
            {"type": "pii", "kind": "CREDIT_CARD", "action": "redact", "count": 2},
            {"type": "injection", "kind": "", "action": "flag", "count": 1},
        ]
    )
    call.set_route("smart")
    with call.stage("cache"):
        call.set_cache(hit=False, kind="exact")
    call.stage_time("route", 2_000)  # a stage that neither waited nor failed leaves no child
    first = call.start_attempt(provider="openai", model="gpt-4o", attempt=0)
    first.end(outcome="error", code="UNAVAILABLE")
    second = call.start_attempt(provider="anthropic", model="claude-sonnet", attempt=1, retry=0)
    headers: dict[str, str] = {}
    second.inject(headers)
    usage = Usage(prompt_tokens=12, completion_tokens=34, cached_prompt_tokens=4)
    second.end(outcome="ok", usage=usage)
    call.set_result(
        provider="anthropic",
        model="claude-sonnet",
        usage=usage,
        cost_usd=0.0012,
        attempts=2,
        upstream_model="claude-sonnet-20250101",
        upstream_id="msg_01",
        finish_reason="stop",
    )
    call.end()
    return headers


def test_a_retried_call_makes_one_server_span_with_attempt_children_and_stage_timings(
    provider: SdkSink, exporter: InMemorySpanExporter
) -> None:
    headers = _run_retried_call(CallTracer(provider), [])
    spans = _by_name(finished(provider, exporter))
    assert set(spans) == {"llmgateway.v1.Gateway/Chat", "gateway.cache", "chat gpt-4o", "chat claude-sonnet"}
    server = spans["llmgateway.v1.Gateway/Chat"]
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    for name in ("gateway.cache", "chat gpt-4o", "chat claude-sonnet"):
        child = spans[name]
        assert child.parent is not None
        assert child.parent.span_id == server.context.span_id
        assert child.context.trace_id == server.context.trace_id
        assert server.start_time is not None
        assert child.start_time is not None
        assert server.start_time <= child.start_time
    assert spans["chat claude-sonnet"].kind is SpanKind.CLIENT
    assert spans["gateway.cache"].kind is SpanKind.INTERNAL

    assert dict(server.attributes or {}) == {
        attr.API: "grpc",
        attr.RPC_SYSTEM: "grpc",
        attr.RPC_SERVICE: "llmgateway.v1.Gateway",
        attr.RPC_METHOD: "Chat",
        attr.REQUEST_ID: "0190abc",
        attr.STAGE_US + "authenticate": 12,
        attr.STAGE_US + "route": 2,
        attr.TEAM: "search",
        attr.KEY_ID: "key_123",
        attr.GEN_AI_OPERATION_NAME: "chat",
        attr.GEN_AI_REQUEST_MODEL: "smart",
        attr.GEN_AI_REQUEST_MAX_TOKENS: 256,
        attr.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        attr.GEN_AI_REQUEST_TOP_P: 0.9,
        attr.STREAMING: False,
        attr.GUARDRAIL_TYPES: ("injection", "pii"),
        attr.GUARDRAIL_ACTIONS: ("pii/CREDIT_CARD/redact", "injection//flag"),
        attr.GUARDRAIL_COUNT: 3,
        attr.ROUTE: "smart",
        attr.CACHE_HIT: False,
        attr.CACHE_KIND: "exact",
        attr.GEN_AI_PROVIDER_NAME: "anthropic",
        attr.TARGET: "anthropic/claude-sonnet",
        attr.COST_USD: 0.0012,
        attr.ATTEMPTS: 2,
        attr.GEN_AI_RESPONSE_MODEL: "claude-sonnet-20250101",
        attr.GEN_AI_RESPONSE_ID: "msg_01",
        attr.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        attr.GEN_AI_USAGE_INPUT_TOKENS: 12,
        attr.GEN_AI_USAGE_OUTPUT_TOKENS: 34,
        attr.CACHED_INPUT_TOKENS: 4,
        attr.RPC_GRPC_STATUS_CODE: "OK",
    }
    assert server.status.status_code is StatusCode.UNSET

    failed = spans["chat gpt-4o"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes[attr.ERROR_TYPE] == "UNAVAILABLE"
    assert failed.attributes[attr.ATTEMPT_OUTCOME] == "error"
    assert failed.attributes[attr.TARGET] == "openai/gpt-4o"
    assert failed.attributes[attr.ATTEMPT] == 0
    served = spans["chat claude-sonnet"]
    assert served.attributes is not None
    assert served.attributes[attr.ATTEMPT] == 1
    assert served.attributes[attr.GEN_AI_USAGE_OUTPUT_TOKENS] == 34
    assert served.attributes[attr.GEN_AI_PROVIDER_NAME] == "anthropic"
    # The upstream request carries the attempt span, so the provider's own spans hang under it.
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{served.context.trace_id:032x}", f"{served.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_a_callers_traceparent_makes_the_call_part_of_its_trace(
    provider: SdkSink, exporter: InMemorySpanExporter
) -> None:
    headers = _run_retried_call(CallTracer(provider), [("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01")])
    server = _by_name(finished(provider, exporter))["llmgateway.v1.Gateway/Chat"]
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert server.parent is not None
    assert f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert headers["traceparent"].split("-")[1] == TRACE_ID


def test_no_prompt_answer_or_key_text_in_any_span_by_default(provider: SdkSink, exporter: InMemorySpanExporter) -> None:
    tracer = CallTracer(provider)
    call = tracer.start_call("Chat", [("authorization", "Bearer sk-live-secret")])
    call.record_content(prompt=PROMPT, answer=ANSWER)  # refused: the tracer was not built to record content
    call.end()
    _run_retried_call(tracer, [("authorization", "Bearer sk-live-secret")])
    spans = finished(provider, exporter)
    assert len(spans) == 5
    dumped = "".join(span.to_json() for span in spans)
    for secret in ("sk-live-secret", "4111", "merger", "ACME"):
        assert secret not in dumped


def test_content_is_recorded_only_with_the_flag(provider: SdkSink, exporter: InMemorySpanExporter) -> None:
    call = CallTracer(provider, record_content=True).start_call("Chat", None)
    call.record_content(prompt="[REDACTED] hello", answer="hi")
    call.end()
    (span,) = finished(provider, exporter)
    assert span.attributes is not None
    assert span.attributes[attr.GEN_AI_INPUT_MESSAGES] == "[REDACTED] hello"
    assert span.attributes[attr.GEN_AI_OUTPUT_MESSAGES] == "hi"


def test_a_failed_call_and_stage_record_the_type_never_the_message(
    provider: SdkSink, exporter: InMemorySpanExporter
) -> None:
    call = CallTracer(provider).start_call("ChatStream", None)
    call.set_request(_request(), streaming=True)
    with pytest.raises(ValueError, match="secret"), call.stage("guardrails.input"):
        raise ValueError(f"bad input {PROMPT} secret")
    started = time.perf_counter_ns()
    time.sleep(0.002)
    call.stage_failed("access", started, PermissionError(f"no {PROMPT}"))  # a stage that refused without waiting
    call.first_chunk()
    call.end(error=ValueError("x"), status_code="PERMISSION_DENIED", reason="GUARDRAIL_BLOCKED")
    spans = _by_name(finished(provider, exporter))
    stage = spans["gateway.guardrails.input"]
    assert stage.status.status_code is StatusCode.ERROR
    assert stage.attributes == {attr.ERROR_TYPE: "ValueError"}
    assert stage.events == ()  # no exception event: its message would quote the prompt
    refused = spans["gateway.access"]
    assert refused.status.status_code is StatusCode.ERROR
    assert refused.attributes == {attr.ERROR_TYPE: "PermissionError"}
    assert refused.start_time is not None
    assert refused.end_time is not None
    assert refused.end_time - refused.start_time >= 2_000_000  # from when the stage started, not when it failed
    assert refused.parent is not None
    server = spans["llmgateway.v1.Gateway/ChatStream"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes[attr.ERROR_TYPE] == "PERMISSION_DENIED"
    assert server.attributes[attr.RPC_GRPC_STATUS_CODE] == "PERMISSION_DENIED"
    assert server.attributes[attr.REASON] == "GUARDRAIL_BLOCKED"
    assert server.attributes[attr.STREAMING] is True
    assert [event.name for event in server.events] == ["first_chunk"]
    assert PROMPT not in "".join(span.to_json() for span in spans.values())


def test_a_cache_hit_is_on_the_call_span(provider: SdkSink, exporter: InMemorySpanExporter) -> None:
    call = CallTracer(provider).start_call("Chat", None)
    with call.stage("cache"):
        call.set_cache(hit=True, kind="semantic")
    call.end()
    server = _by_name(finished(provider, exporter))["llmgateway.v1.Gateway/Chat"]
    assert server.attributes is not None
    assert server.attributes[attr.CACHE_HIT] is True
    assert server.attributes[attr.CACHE_KIND] == "semantic"


def test_tracing_off_hands_out_the_shared_no_op() -> None:
    tracer = CallTracer(None)
    assert not tracer.enabled
    call = tracer.start_call("Chat", [("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01")])
    assert call is NOOP_CALL
    assert not call.recording
    with call.stage("route"):
        pass
    call.stage_time("route", 1_000)
    call.stage_failed("route", 0, ValueError("x"))
    attempt = call.start_attempt(provider="openai", model="gpt-4o", attempt=0)
    headers: dict[str, str] = {}
    attempt.inject(headers)
    attempt.end(outcome="ok")
    call.set_request(_request())
    call.end()
    assert headers == {}


def test_a_sampled_out_call_records_nothing_but_still_propagates(exporter: InMemorySpanExporter) -> None:
    provider = SdkSink(exporter, ALWAYS_OFF, {}, 5.0)
    headers = _run_retried_call(CallTracer(provider), [])
    assert finished(provider, exporter) == ()
    provider.shutdown()
    assert not int(headers["traceparent"].rsplit("-", 1)[1], 16) & 1  # not sampled: nor should the provider record


def test_the_audit_record_keeps_the_exported_trace_or_the_callers(
    provider: SdkSink, exporter: InMemorySpanExporter
) -> None:
    parent = [("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-01")]
    recorded = CallTracer(provider).start_call("Chat", [])
    assert recorded.audit_trace_id == f"{recorded.trace_id:032x}"  # type: ignore[attr-defined]
    assert CallTracer(provider).start_call("Chat", parent).audit_trace_id == TRACE_ID
    sink = SdkSink(exporter, ALWAYS_OFF, {}, 5.0)
    sampled_out = CallTracer(sink)
    assert sampled_out.start_call("Chat", parent).audit_trace_id == TRACE_ID  # the caller's spans may exist
    assert sampled_out.start_call("Chat", []).audit_trace_id == ""  # a trace no one records
    sink.shutdown()
    assert CallTracer(None).start_call("Chat", parent).audit_trace_id == ""  # read from the metadata instead
