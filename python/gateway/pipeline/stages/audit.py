"""The call's audit record (which also yields its ledger row): written on the way out whatever happened, with the
request and answer bodies when the team's policy keeps them."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from gateway.chat import ChatDelta, ChatRequest
from gateway.errors import ErrorKind, GatewayError
from gateway.ledger.audit import AuditLog
from gateway.pipeline.call import Call, ChatCall, EmbedCall
from gateway.pipeline.stage import BaseStage
from gateway.policy.pii import redact_text, scrub
from gateway.records.audit import AuditRecord
from gateway.records.governance import BodyPolicy, Team


class WriteAudit(BaseStage):
    """In strict mode a call's record is committed before its answer completes; in batched mode it joins the next
    batch (the ledger's writer commits every flush interval)."""

    name = "audit"

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def exit(self, call: Call[Any], error: BaseException | None) -> Awaitable[None] | None:
        record = call.record
        record.latency_ms = (time.time() - record.at) * 1000
        first_chunk_s = call.answer.first_chunk_s
        if first_chunk_s is not None:
            record.ttfc_ms = first_chunk_s * 1000
        if error is not None:
            record_error(record, error)
        if self._log.strict:
            return self._log.commit(record)
        self._log.submit(record)
        return None


def record_error(record: AuditRecord, error: BaseException) -> None:
    if isinstance(error, GatewayError):
        record.status = error.kind.value
        record.reason = error.reason
        record.error = scrub(error.message)
    elif isinstance(error, Exception):
        record.status = ErrorKind.INTERNAL.value
        record.reason = "INTERNAL"
        record.error = type(error).__name__
    else:
        record.status = ErrorKind.CANCELLED.value
        record.reason = "CANCELLED"


class KeepBodies(BaseStage):
    """After the output guardrails: the answer is kept as the caller got it."""

    name = "audit.bodies"

    def __init__(self, teams: dict[str, Team]) -> None:
        self._teams = teams

    def enter(self, call: ChatCall) -> None:
        assert call.key is not None
        team = self._teams.get(call.key.team)
        policy = team.bodies if team is not None else BodyPolicy.NONE
        if policy is not BodyPolicy.NONE:
            call.record.request_body = request_body(call.request, policy)
            call.filters.append(_AnswerText(call, policy))


class KeepEmbedBodies(BaseStage):
    """The texts embedded, as the provider got them (after the input guardrails), under the team's body policy; the
    vectors are not kept (they can be recomputed, and would dwarf the log)."""

    name = "audit.bodies"

    def __init__(self, teams: dict[str, Team]) -> None:
        self._teams = teams

    def enter(self, call: EmbedCall) -> None:
        assert call.key is not None
        team = self._teams.get(call.key.team)
        policy = team.bodies if team is not None else BodyPolicy.NONE
        if policy is not BodyPolicy.NONE:
            request = call.request
            parameters = {"dimensions": request.dimensions} if request.dimensions is not None else {}
            call.record.request_body = {
                "inputs": [body_text(text, policy) for text in request.inputs],
                "parameters": parameters,
            }


class _AnswerText:
    __slots__ = ("_parts", "_policy", "_record")

    def __init__(self, call: ChatCall, policy: BodyPolicy) -> None:
        self._record = call.record
        self._policy = policy
        self._parts: list[str] = []

    def chunk(self, delta: ChatDelta) -> None:
        if delta.text:
            self._parts.append(delta.text)

    def finish(self) -> None:
        self._record.response_body = body_text("".join(self._parts), self._policy)


def request_body(request: ChatRequest, policy: BodyPolicy) -> dict[str, Any]:
    """The request as the audit record keeps it: its messages' text (redacted under that policy) and the parameters
    that change the answer, enough for Insights.Replay to send it again."""
    messages = []
    for m in request.messages:
        message: dict[str, Any] = {"role": m.role, "content": body_text(m.text(), policy)}
        if m.name:
            message["name"] = m.name
        if m.tool_call_id:
            message["tool_call_id"] = m.tool_call_id
        if m.untrusted:
            message["untrusted"] = True
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": t.id, "name": t.name, "arguments": body_text(t.arguments_json, policy)} for t in m.tool_calls
            ]
        messages.append(message)
    parameters: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_tokens", request.max_tokens),
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("seed", request.seed),
            ("stop", request.stop or None),
            ("tool_choice", request.tool_choice or None),
        )
        if value is not None
    }
    if request.tools:
        parameters["tools"] = [
            {"name": t.name, "description": t.description, "parameters": t.parameters} for t in request.tools
        ]
    return {"messages": messages, "parameters": parameters}


def body_text(text: str, policy: BodyPolicy) -> str:
    return redact_text(text) if policy is BodyPolicy.REDACTED else text
