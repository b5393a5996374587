"""The team's guardrails on the way in (content rules, injection, PII) and out (PII, secrets, markers), and the
key's usage anomalies."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager

from gateway.chat import ChatDelta, ChatRequest, ToolCallDelta
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.pipeline.call import CallKind, ChatCall, EmbedCall
from gateway.pipeline.stage import BaseStage
from gateway.policy.guardrails import AnomalyDetector, InputOutcome, OutputGuard, OutputStream
from gateway.policy.guardrails.input import OFF_LOOP_MIN_CHARS
from gateway.policy.team_policies import TeamPolicies, action_records
from gateway.routing.features import as_chat
from gateway.tokens import TokenCounter


class InputGuardrails(BaseStage):
    """Before anything is cached, routed or sent: the cache key, the route and the provider see the redacted request."""

    name = "guardrails.input"

    def __init__(self, policies: TeamPolicies) -> None:
        self._policies = policies

    def enter(self, call: ChatCall) -> Awaitable[None] | None:
        assert call.key is not None
        guard = self._policies.for_team(call.key.team).input
        if guard is None:
            return None
        if call.request.text_chars >= OFF_LOOP_MIN_CHARS:
            return self._check_off_loop(call)
        with _audit_refusal(call):
            _apply(call, guard.check(call.request, floor=call.classification))
        return None

    async def _check_off_loop(self, call: ChatCall) -> None:
        assert call.key is not None
        guard = self._policies.for_team(call.key.team).input
        assert guard is not None
        with _audit_refusal(call):
            _apply(call, await guard.check_async(call.request, floor=call.classification))


@contextmanager
def _audit_refusal(call: ChatCall) -> Iterator[None]:
    """A request refused as an injection leaves its verdict (score, model version) in the audit record; one refused
    for the PII it holds, the entity types blocked (never the values), which the compliance report counts."""
    try:
        yield
    except InvalidRequest as error:
        for kind in str(error.metadata.get("entity_types", "")).split(","):
            if kind:
                call.record.guardrails.append({"type": "pii", "kind": kind, "action": "block", "count": 1})
        raise
    except PermissionDenied as error:
        if error.reason == "PROMPT_INJECTION":
            call.record.guardrails.append(
                {
                    "type": "injection",
                    "kind": "PROMPT_INJECTION",
                    "action": "block",
                    "count": 1,
                    "score": float(error.metadata["score"]),
                    "model": error.metadata["model"],
                }
            )
        raise


def _apply(call: ChatCall, outcome: InputOutcome) -> None:
    call.request = outcome.request
    call.classification = outcome.classification
    call.record.classification = outcome.classification.label
    call.restore = outcome.restore_mapping
    if outcome.actions:
        call.record.guardrails.extend(action_records(outcome.actions))


class EmbedInputGuardrails(BaseStage):
    """The team's input policy on each text to embed, checked as a user turn of a chat is (content rules and PII:
    `block` refuses the call, `redact` and `mask` embed the redacted text, whose vector then differs from the
    original's), without the prompt-injection scorer: a text to embed is stored and searched, never followed."""

    name = "guardrails.input"

    def __init__(self, policies: TeamPolicies) -> None:
        self._policies = policies

    def enter(self, call: EmbedCall) -> Awaitable[None] | None:
        assert call.key is not None
        guard = self._policies.for_team(call.key.team).input
        if guard is None:
            return None
        view = as_chat(call.request)
        if view.text_chars >= OFF_LOOP_MIN_CHARS:
            return self._check_off_loop(call, view)
        _apply_to_inputs(call, guard.check(view, floor=call.classification, score_injection=False))
        return None

    async def _check_off_loop(self, call: EmbedCall, view: ChatRequest) -> None:
        assert call.key is not None
        guard = self._policies.for_team(call.key.team).input
        assert guard is not None
        outcome = await guard.check_async(view, floor=call.classification, score_injection=False)
        _apply_to_inputs(call, outcome)


def _apply_to_inputs(call: EmbedCall, outcome: InputOutcome) -> None:
    redacted = outcome.request
    if redacted.text_chars != call.request.text_chars or any(
        m.content != text for m, text in zip(redacted.messages, call.request.inputs, strict=True)
    ):
        call.request = dataclasses.replace(
            call.request, inputs=[m.content for m in redacted.messages], text_chars=redacted.text_chars
        )
    call.classification = outcome.classification
    call.record.classification = outcome.classification.label
    if outcome.actions:
        call.record.guardrails.extend(action_records(outcome.actions))


class WatchAnomalies(BaseStage):
    """Per-key baselines of requests, prompt sizes, answer sizes and errors: flags, throttles or blocks a key far
    outside its own pattern."""

    name = "anomalies"

    def __init__(self, detector: AnomalyDetector) -> None:
        self._detector = detector

    def enter(self, call: ChatCall) -> None:
        assert call.key is not None
        if call.kind is CallKind.SHADOW:
            return  # the gateway's copy of a call, not the key's behaviour
        verdict = self._detector.observe_request(call.key.id, TokenCounter.upper_bound(call.request))
        if verdict.actions:
            call.record.guardrails.extend(action_records(verdict.actions))
        verdict.enforce()

    def exit(self, call: ChatCall, error: BaseException | None) -> None:
        if not call.admitted or call.kind is CallKind.SHADOW:
            return
        assert call.key is not None
        verdict = self._detector.observe_answer(call.key.id, call.record.completion_tokens, error=error is not None)
        if verdict.actions:
            call.record.guardrails.extend(action_records(verdict.actions))


class OutputGuardrails(BaseStage):
    name = "guardrails.output"

    def __init__(self, policies: TeamPolicies) -> None:
        self._policies = policies

    def enter(self, call: ChatCall) -> None:
        assert call.key is not None
        guard = self._policies.for_team(call.key.team).output
        if guard is not None and call.request.passthrough.get("logprobs"):
            # Logprobs carry the answer's tokens as generated: they would pass around the output policy.
            raise InvalidRequest(
                "logprobs cannot be returned to a team whose answers pass output guardrails",
                reason="UNSUPPORTED_PARAMETER",
                metadata={"param": "logprobs"},
            )
        if guard is not None:
            call.filters.append(_GuardedAnswer(call, guard, call.restore))


class _GuardedAnswer:
    """The output guard over one answer: its text, and each tool call's arguments on their own (the caller's tool
    gets the real values of restored placeholders too)."""

    __slots__ = ("_call", "_calls", "_guard", "_mapping", "_text")

    def __init__(self, call: ChatCall, guard: OutputGuard, mapping: Mapping[str, str] | None) -> None:
        self._call = call
        self._guard = guard
        self._mapping = mapping
        self._text = guard.stream(mapping=mapping)
        self._calls: dict[int, OutputStream] = {}

    def chunk(self, delta: ChatDelta) -> None:
        if delta.text:
            delta.text = self._text.feed(delta.text)
        if delta.tool_calls:
            delta.tool_calls = [self._tool_part(part) for part in delta.tool_calls]

    def _tool_part(self, part: ToolCallDelta) -> ToolCallDelta:
        if not part.arguments_delta:
            return part
        stream = self._calls.get(part.index)
        if stream is None:
            stream = self._calls[part.index] = self._guard.stream(mapping=self._mapping)
        return ToolCallDelta(part.index, part.id, part.name, stream.feed(part.arguments_delta))

    def finish(self) -> ChatDelta | None:
        text = self._text.finish()
        parts = [ToolCallDelta(i, arguments_delta=tail) for i, s in sorted(self._calls.items()) if (tail := s.finish())]
        actions = list(self._text.actions)
        for stream in self._calls.values():
            actions.extend(stream.actions)
        if actions:
            self._call.record.guardrails.extend(action_records(tuple(actions)))
        return ChatDelta(text=text, tool_calls=parts) if text or parts else None
