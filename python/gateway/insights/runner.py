"""One request through the whole pipeline (authentication, guardrails, budgets, routing, audit), collected with its
latency and time to first chunk: what Replay and Compare run for each target."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.chat import ChatRequest, Message, Tool, ToolCall
from gateway.errors import FailedPrecondition, GatewayError
from gateway.pipeline import CallInfo, CallKind, Pipeline
from gateway.pipeline.call import ChatCall
from gateway.records.audit import AuditRecord


@dataclass(slots=True)
class Outcome:
    call: ChatCall
    """The call as the pipeline ran it: its record, route plan, attempts and answer."""
    text: str
    error: GatewayError | None
    latency_ms: float
    ttfc_ms: float


async def run(pipeline: Pipeline, request: ChatRequest, info: CallInfo, *, kind: CallKind, method: str) -> Outcome:
    """Streams the request (to time its first chunk) and collects the answer; a failure is returned, not raised,
    so that one target's error does not end a comparison."""
    started = time.monotonic()
    first_at: float | None = None
    parts: list[str] = []
    error: GatewayError | None = None
    scope = pipeline.call(info, kind, method, request.model)
    try:
        async with scope:
            async for delta in scope.stream(request):
                if first_at is None:
                    first_at = time.monotonic()
                parts.append(delta.text)
    except GatewayError as err:
        error = err
    return Outcome(scope.call, "".join(parts) if error is None else "", error, _ms(started), _ms(started, first_at))


def _ms(started: float, at: float | None = None) -> float:
    return ((at if at is not None else time.monotonic()) - started) * 1000


def request_from_audit(record: AuditRecord, *, model: str, overrides: dict[str, Any]) -> ChatRequest:
    """The audited call's request, rebuilt from its stored body (text only: images are not stored)."""
    if record.kind == "embed":
        raise FailedPrecondition(
            f"call {record.request_id} is an embedding call: Replay runs chat calls only",
            reason="NOT_REPLAYABLE",
        )
    body = record.request_body
    if not body or "messages" not in body:
        raise FailedPrecondition(
            f"call {record.request_id} cannot be replayed: team {record.team or '(none)'} does not store request "
            "bodies (body policy 'none'); set it to 'redacted' or 'full' for calls to come",
            reason="NO_STORED_BODY",
        )
    messages = [
        Message(
            role=m["role"],
            content=m.get("content", ""),
            name=m.get("name", ""),
            tool_call_id=m.get("tool_call_id", ""),
            untrusted=m.get("untrusted", False),
            tool_calls=tuple(
                ToolCall(t.get("id", ""), t["name"], t.get("arguments", "")) for t in m.get("tool_calls", ())
            ),
        )
        for m in body["messages"]
    ]
    parameters = {**body.get("parameters", {}), **overrides}
    tools = [Tool(t["name"], t.get("description", ""), t.get("parameters")) for t in parameters.pop("tools", ())]
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=parameters.get("max_tokens"),
        temperature=parameters.get("temperature"),
        top_p=parameters.get("top_p"),
        seed=parameters.get("seed"),
        stop=list(parameters.get("stop") or []),
        tool_choice=parameters.get("tool_choice") or "",
        tools=tools,
        text_chars=sum(len(m.content) for m in messages),
    )
