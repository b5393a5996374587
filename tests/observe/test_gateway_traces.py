"""The trace of a call through a running gateway, captured by an in-memory exporter: the span tree, the GenAI
attributes, attempts of a retried call, the first-chunk event of a stream, and no prompt text or key anywhere."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from llmgateway.v1 import gateway_pb2 as pb
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request
from tests.server.fixtures import AUTH, SIMULATED_CONFIG, TEST_KEY, StartGateway

PROMPT = "My secret plan is to paint the fence blue"
CONFIG = (
    SIMULATED_CONFIG
    + """
routes:
  - name: sturdy
    strategy: fallback
    targets: [{model: broken}, {model: fast}]
    retries: {max_attempts: 2, backoff_ms: 0}
"""
)


@pytest.fixture
async def traced(start_gateway: StartGateway) -> tuple[Gateway, Admin, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    gateway, channel = await start_gateway(CONFIG, span_exporter=exporter)
    return gateway, Admin.on(channel), exporter


def finished(gateway: Gateway, exporter: InMemorySpanExporter) -> Sequence[ReadableSpan]:
    assert gateway.tracing is not None
    gateway.tracing.force_flush()
    return exporter.get_finished_spans()


def children(spans: Sequence[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


async def test_a_chat_call_is_one_trace_with_an_attempt_span_and_stage_timings(
    traced: tuple[Gateway, Admin, InMemorySpanExporter],
) -> None:
    gateway, admin, exporter = traced
    response = await admin.gateway.Chat(chat_request("fast", text=PROMPT, max_tokens=20), metadata=AUTH)
    spans = finished(gateway, exporter)
    [call] = [s for s in spans if s.name == "llmgateway.v1.Gateway/Chat"]
    assert call.kind is SpanKind.SERVER
    assert {s.context.trace_id for s in spans} == {call.context.trace_id}
    assert [s.name for s in children(spans, call)] == ["chat fast"]  # stages that did not wait: timings only
    attributes = dict(call.attributes or {})
    for stage in ("authenticate", "access", "route", "limits", "usage"):
        assert isinstance(attributes[f"llm_gateway.stage_us.{stage}"], int)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.request.model"] == "fast"
    assert attributes["gen_ai.request.max_tokens"] == 20
    assert attributes["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == response.usage.completion_tokens
    assert attributes["llm_gateway.key_id"] == "bootstrap"
    [attempt] = [s for s in spans if s.name == "chat fast"]
    assert attempt.kind is SpanKind.CLIENT
    assert dict(attempt.attributes or {})["gen_ai.provider.name"] == "sim"


async def test_a_retried_call_has_an_attempt_span_per_try(
    traced: tuple[Gateway, Admin, InMemorySpanExporter],
) -> None:
    gateway, admin, exporter = traced
    response = await admin.gateway.Chat(chat_request("sturdy"), metadata=AUTH)
    assert response.model == "fast"
    spans = finished(gateway, exporter)
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    outcomes = [dict(s.attributes or {}).get("llm_gateway.attempt.outcome") for s in attempts]
    assert [s.name for s in attempts] == ["chat broken", "chat fast"]
    assert outcomes == ["error", "ok"]


async def test_a_stream_marks_its_first_chunk_and_a_failure_its_status(
    traced: tuple[Gateway, Admin, InMemorySpanExporter],
) -> None:
    gateway, admin, exporter = traced
    async for _ in admin.gateway.ChatStream(chat_request("fast", text=PROMPT), metadata=AUTH):
        pass
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await admin.gateway.Chat(chat_request("broken"), metadata=AUTH)
    assert broken.value.code() is grpc.StatusCode.UNAVAILABLE
    spans = finished(gateway, exporter)
    [stream] = [s for s in spans if s.name == "llmgateway.v1.Gateway/ChatStream"]
    assert [e.name for e in stream.events] == ["first_chunk"]
    [failed] = [s for s in spans if s.name == "llmgateway.v1.Gateway/Chat"]
    assert dict(failed.attributes or {})["error.type"] == "UNAVAILABLE"
    everything = repr([(s.name, dict(s.attributes or {}), [e.attributes for e in s.events]) for s in spans])
    assert "paint the fence" not in everything
    assert TEST_KEY not in everything


async def test_a_cache_hit_has_a_cache_span_and_no_attempt(
    traced: tuple[Gateway, Admin, InMemorySpanExporter],
) -> None:
    gateway, admin, exporter = traced
    cached = pb.CacheControl(mode=pb.CACHE_MODE_READ_WRITE)
    await admin.gateway.Chat(chat_request("fast", text=PROMPT, cache=cached), metadata=AUTH)
    finished(gateway, exporter)
    exporter.clear()
    await admin.gateway.Chat(chat_request("fast", text=PROMPT, cache=cached), metadata=AUTH)
    spans = finished(gateway, exporter)
    [call] = [s for s in spans if s.name == "llmgateway.v1.Gateway/Chat"]
    assert [s.name for s in children(spans, call)] == ["gateway.cache"]
    attributes = dict(call.attributes or {})
    assert attributes["llm_gateway.cache.hit"] is True
    assert attributes["llm_gateway.cache.kind"] == "exact"
    assert not [s for s in spans if s.kind is SpanKind.CLIENT]


PII_PROMPT = "Mail the plan to jane.doe@example.com please"


@pytest.mark.parametrize("record_content", [True, False])
async def test_record_content_puts_the_text_the_audit_keeps_on_the_span_under_the_teams_body_policy(
    start_gateway: StartGateway, record_content: bool
) -> None:
    """`observe.tracing.record_content` (README, Tracing): the prompt and answer as the team's audit record keeps
    them, so redacted for a team with `redacted` bodies and absent for one with `none`; without the flag, never."""
    exporter = InMemorySpanExporter()
    flag = "true" if record_content else "false"
    gateway, channel = await start_gateway(
        SIMULATED_CONFIG + f"observe: {{tracing: {{record_content: {flag}}}}}\n", span_exporter=exporter
    )
    admin = Admin.on(channel)
    await admin.team("careful", body_policy="redacted")
    await admin.team("silent", body_policy="none")
    careful, _ = await admin.key(team="careful")
    silent, _ = await admin.key(team="silent")
    response = await admin.gateway.Chat(chat_request("fast", text=PII_PROMPT), metadata=bearer(careful))
    await admin.gateway.Chat(chat_request("fast", text=PII_PROMPT), metadata=bearer(silent))
    spans = [s for s in finished(gateway, exporter) if s.name == "llmgateway.v1.Gateway/Chat"]
    by_team = {dict(s.attributes or {})["llm_gateway.team"]: dict(s.attributes or {}) for s in spans}
    assert set(by_team) == {"careful", "silent"}
    assert "gen_ai.input.messages" not in by_team["silent"]
    assert "gen_ai.output.messages" not in by_team["silent"]
    everything = repr([dict(s.attributes or {}) for s in spans])
    assert "jane.doe@example.com" not in everything
    if not record_content:
        assert "gen_ai.input.messages" not in by_team["careful"]
        assert "Mail the plan" not in everything
        return
    # The messages as the redacted audit body has them: the address replaced by its placeholder.
    assert (
        by_team["careful"]["gen_ai.input.messages"] == '[{"role":"user","content":"Mail the plan to <EMAIL_1> please"}]'
    )
    assert by_team["careful"]["gen_ai.output.messages"] == response.message.content


def documented_chain() -> list[str]:
    """The stages after the outer ones, in the order docs/architecture.md draws them."""
    drawing = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text().split("```")[1]
    rows = [line for line in drawing.splitlines() if line.lstrip().startswith(("request ", "route "))]
    return [
        name.strip() for row in rows for name in row.replace("──▶", "─▶").split("─▶")[1 if "request" in row else 0 :]
    ]


async def test_the_stages_run_in_the_order_the_architecture_page_draws(
    traced: tuple[Gateway, Admin, InMemorySpanExporter],
) -> None:
    """The chain's order is the architecture (docs/architecture.md): the stage timings of a call follow the drawing."""
    gateway, admin, exporter = traced
    await admin.gateway.Chat(chat_request("fast", text=PROMPT), metadata=AUTH)
    [call] = [s for s in finished(gateway, exporter) if s.name == "llmgateway.v1.Gateway/Chat"]
    prefix = "llm_gateway.stage_us."
    ran = [key.removeprefix(prefix) for key in call.attributes or {} if key.startswith(prefix)]
    documented = documented_chain()
    assert len(ran) >= 8
    assert ran == [stage for stage in documented if stage in ran], f"ran {ran}, drawn {documented}"
