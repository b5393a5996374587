"""The input guard: content rules, prompt-injection scoring and PII handling of a request before it leaves.

Order, cheapest refusal first: content rules (token ceiling, keywords, patterns, topics) -> injection score -> PII
(block, else redact or mask, with placeholder numbering shared across every text of the request so `<EMAIL_1>` means
one address everywhere). The request's classification comes from every entity type found, allowed ones included:
an allowed card still reaches the provider, and residency must see it.

What is scanned: PII in every message (assistant turns of the history too: they may carry values restored into an
earlier answer) and in tool-call arguments; content rules and injection in user and tool messages, the text a caller
or a tool controls, and in any message the caller marks `untrusted` (a retrieved document placed in a system turn);
the system prompt is otherwise the operator's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from gateway.chat import ChatRequest, Message, ToolCall
from gateway.config.guardrails import (
    ClassificationPolicy,
    GuardrailsConfig,
    InjectionAction,
    InjectionModel,
    InputPolicy,
    PiiAction,
)
from gateway.errors import InvalidRequest, PermissionDenied
from gateway.policy.guardrails import pii
from gateway.policy.guardrails.actions import Check, GuardrailAction
from gateway.policy.guardrails.classify import classify
from gateway.policy.guardrails.content import ContentRuleChecker
from gateway.policy.guardrails.injection import InjectionScorer, InjectionVerdict
from gateway.records.classification import Classification

_INSPECTED_ROLES = frozenset(("user", "tool"))
_NO_INJECTION = InjectionVerdict(0.0, ())

OFF_LOOP_MIN_CHARS = 32_768
"""Above this many characters a check runs in a worker thread: ~0.55 ms per 9,000 characters (a 2,000-token prompt,
benches/policy/bench_guardrails.py) is ~2 ms of loop time here, an order above a thread hand-off (~35-50 µs)."""


@functools.cache
def _scorer(model: InjectionModel) -> InjectionScorer:
    """One scorer per model per process; the combined one loads MiniLM when the first guard that opts in is built
    (a missing model package then fails the configuration, naming the pip command)."""
    if model is InjectionModel.COMBINED:
        from gateway.policy.guardrails.injection_minilm import shared_head  # numpy and MiniLM: only when opted in

        return InjectionScorer(minilm=shared_head())
    return InjectionScorer()


TokenCounting = Callable[[ChatRequest], int]
"""Counts a request's prompt tokens (the pipeline's TokenCounter, bound to the target's model)."""


@dataclass(frozen=True, slots=True)
class InputOutcome:
    request: ChatRequest
    """The request to send on: the caller's own object when nothing changed, else a copy with redacted text."""
    mapping: dict[str, str]
    """Placeholder -> original of every redacted item; pass to the output guard when `restore_in_output`."""
    restore_in_output: bool
    actions: tuple[GuardrailAction, ...]
    classification: Classification
    found: dict[str, int]
    """Entity type -> items found, allowed types included (audit counts; never values)."""
    injection: InjectionVerdict

    @property
    def restore_mapping(self) -> dict[str, str] | None:
        """What the output guard should restore: the mapping when the policy restores, else None."""
        return self.mapping if self.restore_in_output and self.mapping else None


@dataclass(slots=True)
class _Segment:
    """One scanned text of the request: message content, a text part, or a tool call's arguments."""

    message: int
    part: int | None = None
    tool_call: int | None = None


class InputGuard:
    """Compiled once per policy (per team); `check` is thread-safe and keeps no per-request state."""

    def __init__(
        self,
        policy: InputPolicy,
        classification: ClassificationPolicy | None = None,
        *,
        count_tokens: TokenCounting | None = None,
        scorer: InjectionScorer | None = None,
    ) -> None:
        self.policy = policy
        self._classification = classification or ClassificationPolicy()
        self._content = ContentRuleChecker(policy.content)
        self._count_tokens = count_tokens
        self._scorer = scorer or _scorer(policy.injection.model)
        actions = policy.pii.actions()
        self._pii_actions = actions
        self._modes = pii.redaction_modes({k: a for k, a in actions.items() if a is not PiiAction.BLOCK})
        self._blocked = frozenset(k for k, a in actions.items() if a is PiiAction.BLOCK)

    @classmethod
    def from_config(cls, config: GuardrailsConfig, *, count_tokens: TokenCounting | None = None) -> InputGuard:
        return cls(config.input, config.classification, count_tokens=count_tokens)

    def check(
        self,
        request: ChatRequest,
        *,
        floor: Classification = Classification.PUBLIC,
        prompt_tokens: int | None = None,
        score_injection: bool = True,
    ) -> InputOutcome:
        """Apply the policy (without the injection scorer when `score_injection` is False: texts to embed are
        stored and searched, never followed, and documents quoting an attack are what a search index holds).
        Raises InvalidRequest (PII_BLOCKED, INPUT_TOO_LONG) or PermissionDenied
        (PROMPT_INJECTION, CONTENT_BLOCKED, TOPIC_BLOCKED, TOPIC_NOT_ALLOWED); messages and metadata name entity
        types, rules and signals, never the text. `floor` is the classification the call already has (declared,
        raised by its key's label); `prompt_tokens`, when the caller has counted them, saves a count for the
        max_input_tokens rule."""
        actions: list[GuardrailAction] = []
        inspected = [m.text() for m in request.messages if m.role in _INSPECTED_ROLES or m.untrusted]

        if self._content.active:
            if prompt_tokens is None and self._content.max_input_tokens is not None and self._count_tokens:
                prompt_tokens = self._count_tokens(request)
            self._content.check(inspected, prompt_tokens)

        verdict = _NO_INJECTION
        injection = self.policy.injection
        if score_injection and injection.action is not InjectionAction.OFF:
            verdict = self._scorer.score_all(inspected)
            if verdict.score >= injection.threshold:
                if injection.action is InjectionAction.BLOCK:
                    raise PermissionDenied(
                        f"the request reads as a prompt-injection attempt (score {verdict.score:.2f},"
                        f" threshold {injection.threshold:.2f})",
                        reason="PROMPT_INJECTION",
                        metadata={
                            "score": f"{verdict.score:.2f}",
                            "signals": ",".join(verdict.signals),
                            "model": self._scorer.version,
                        },
                    )
                flagged = GuardrailAction(
                    "input", "injection", "PROMPT_INJECTION", "flag", score=verdict.score, model=self._scorer.version
                )
                actions.append(flagged)

        new_request, mapping, found = self._apply_pii(request)
        for kind, count in sorted(found.items()):
            action = self._pii_actions[kind]
            if action is not PiiAction.ALLOW:
                check: Check = "secret" if kind == "SECRET" else "pii"
                actions.append(GuardrailAction("input", check, kind, action.value, count))
        return InputOutcome(
            request=new_request,
            mapping=mapping,
            restore_in_output=self.policy.pii.restore_in_output,
            actions=tuple(actions),
            classification=classify(found, self._classification, floor),
            found=dict(found),
            injection=verdict,
        )

    async def check_async(
        self,
        request: ChatRequest,
        *,
        floor: Classification = Classification.PUBLIC,
        prompt_tokens: int | None = None,
        score_injection: bool = True,
    ) -> InputOutcome:
        """`check` for the event loop: long prompts go to a worker thread so the loop keeps serving (the scorer is
        Python and holds the GIL in slices, the PII scan runs without it)."""
        if request.text_chars < OFF_LOOP_MIN_CHARS and not (score_injection and self._scorer.embeds):
            return self.check(request, floor=floor, prompt_tokens=prompt_tokens, score_injection=score_injection)
        return await asyncio.to_thread(
            self.check, request, floor=floor, prompt_tokens=prompt_tokens, score_injection=score_injection
        )

    def _apply_pii(self, request: ChatRequest) -> tuple[ChatRequest, dict[str, str], Counter[str]]:
        texts: list[str] = []
        segments: list[_Segment] = []
        for i, message in enumerate(request.messages):
            if message.content:
                texts.append(message.content)
                segments.append(_Segment(i))
            for j, part in enumerate(message.parts):
                if isinstance(part, str) and part:
                    texts.append(part)
                    segments.append(_Segment(i, part=j))
            for k, call in enumerate(message.tool_calls):
                if call.arguments_json:
                    texts.append(call.arguments_json)
                    segments.append(_Segment(i, tool_call=k))
        if not texts:
            return request, {}, Counter()
        matches = pii.find_many(texts)
        found: Counter[str] = Counter()
        for per_text in matches:
            found.update(pii.count_kinds(per_text))
        if not found:
            return request, {}, found
        blocked = sorted(self._blocked.intersection(found))
        if blocked:
            types = ", ".join(blocked)
            raise InvalidRequest(
                f"the request contains {types}, which this policy does not allow to be sent",
                reason="PII_BLOCKED",
                metadata={"entity_types": ",".join(blocked)},
            )
        if not any(kind in self._modes for kind in found):
            return request, {}, found

        mapping: dict[str, str] = {}
        replaced: dict[int, str] = {}
        for index, (text, per_text) in enumerate(zip(texts, matches, strict=True)):
            if any(m.kind in self._modes for m in per_text):
                replaced[index], mapping = pii.redact(text, self._modes, mapping)
        return self._rebuild(request, segments, texts, replaced), mapping, found

    @staticmethod
    def _rebuild(
        request: ChatRequest, segments: list[_Segment], texts: list[str], replaced: dict[int, str]
    ) -> ChatRequest:
        messages = list(request.messages)
        grown = 0
        for index, new_text in replaced.items():
            segment = segments[index]
            grown += len(new_text) - len(texts[index])
            message: Message = messages[segment.message]
            if segment.part is not None:
                parts = list(message.parts)
                parts[segment.part] = new_text
                message = dataclasses.replace(message, parts=tuple(parts))
            elif segment.tool_call is not None:
                calls: list[ToolCall] = list(message.tool_calls)
                calls[segment.tool_call] = dataclasses.replace(calls[segment.tool_call], arguments_json=new_text)
                message = dataclasses.replace(message, tool_calls=tuple(calls))
            else:
                message = dataclasses.replace(message, content=new_text)
            messages[segment.message] = message
        # text_chars bounds size checks downstream; 0 means the caller never counted, so it stays 0.
        text_chars = request.text_chars + grown if request.text_chars else 0
        return dataclasses.replace(request, messages=messages, text_chars=max(0, text_chars))
