"""The output guard: PII, secrets and confidential markers in answers are redacted before they leave the gateway,
whole or streamed, and the placeholders of a redacted prompt are put back when the input policy says so.

Streaming is two stages with a carry-over window each: confidential markers first (this module: holds back the
longest marker string, or `window` characters when patterns are configured), then the Rust core's PII stream
redactor (holds back PII_STREAM_HOLD_CHARS, longer only while an unbroken token or a private-key block is still
arriving). An item split across chunks is therefore seen whole before any of it is released, and a stream never
holds more than the two windows. The unary path runs the same stages over the whole text, so both agree.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.chat import ChatResult
from gateway.config.guardrails import ConfidentialMarkers, GuardrailsConfig, MarkerAction, OutputPolicy, PiiAction
from gateway.errors import PermissionDenied
from gateway.policy.guardrails import pii
from gateway.policy.guardrails.actions import GuardrailAction


@dataclass(frozen=True, slots=True)
class OutputOutcome:
    text: str
    actions: tuple[GuardrailAction, ...]


def _marker_regex(markers: ConfidentialMarkers) -> re.Pattern[str] | None:
    literals = sorted({s for s in markers.strings if s}, key=len, reverse=True)
    alternatives = [f"(?i:{re.escape(s)})" for s in literals] + [f"(?:{p})" for p in markers.patterns]
    return re.compile("|".join(alternatives)) if alternatives else None


class _MarkerStream:
    """Replaces marker matches in streamed text, holding back `window` characters (never cutting through a match)."""

    def __init__(self, regex: re.Pattern[str], replacement: str, window: int, *, block: bool) -> None:
        self._regex = regex
        self._replacement = replacement
        self._window = window
        self._block = block
        self._held = ""
        self.count = 0

    def feed(self, text: str) -> str:
        buffer = self._held + text
        cut = len(buffer) - self._window
        if cut <= 0:
            self._held = buffer
            return ""
        out: list[str] = []
        pos = 0
        for match in self._regex.finditer(buffer):
            if match.start() == match.end():
                continue
            if match.end() > cut:
                cut = min(cut, match.start())  # a match that may still grow: keep all of it back
                break
            out.append(buffer[pos : match.start()])
            out.append(self._hit())
            pos = match.end()
        out.append(buffer[pos:cut])
        self._held = buffer[cut:]
        return "".join(out)

    def finish(self) -> str:
        buffer, self._held = self._held, ""
        return self._regex.sub(lambda _: self._hit(), buffer)

    def _hit(self) -> str:
        self.count += 1
        if self._block:
            raise PermissionDenied(
                "the answer contains a confidential marker this policy does not let out",
                reason="CONFIDENTIAL_MARKER",
                metadata={"rule": "output.confidential"},
            )
        return self._replacement

    @property
    def held(self) -> int:
        return len(self._held)


class OutputStream:
    """One streamed answer: `feed` each chunk and send what it returns, then send what `finish` returns.
    Raises PermissionDenied when a `block` policy meets its item (the item itself is never released)."""

    def __init__(self, guard: OutputGuard, mapping: Mapping[str, str] | None) -> None:
        self._guard = guard
        self._markers = guard._new_marker_stream()
        restoring = bool(mapping)
        self._pii = pii.stream(guard._modes, mapping, restore=True) if guard._modes or restoring else None
        self._checked: dict[str, int] = {}

    def feed(self, text: str) -> str:
        if self._markers is not None:
            text = self._markers.feed(text)
            if not text:
                return ""
        if self._pii is None:
            return text
        out = self._pii.push(text)
        self._check_blocked()
        return out

    def finish(self) -> str:
        text = self._markers.finish() if self._markers is not None else ""
        if self._pii is None:
            return text
        out = self._pii.push(text) + self._pii.finish() if text else self._pii.finish()
        self._check_blocked()
        return out

    @property
    def held(self) -> int:
        """Characters (markers) plus bytes (PII) currently held back."""
        return (self._markers.held if self._markers else 0) + (self._pii.held if self._pii else 0)

    @property
    def actions(self) -> tuple[GuardrailAction, ...]:
        """What has been done so far (complete after `finish`)."""
        found = self._pii.found if self._pii is not None else {}
        markers = self._markers.count if self._markers is not None else 0
        return self._guard._actions(found, markers)

    def _check_blocked(self) -> None:
        if self._guard._blocked and self._pii is not None:
            found = self._pii.found
            hit = sorted(k for k in self._guard._blocked if found.get(k))
            if hit:
                self._guard._raise_blocked(hit)


class OutputGuard:
    """Compiled once per policy (per team); `check` is thread-safe, each `stream()` is one answer's state."""

    def __init__(self, policy: OutputPolicy) -> None:
        self.policy = policy
        self._pii_actions = policy.pii_actions()
        self._modes = pii.redaction_modes(self._pii_actions)
        self._blocked = frozenset(k for k, a in self._pii_actions.items() if a is PiiAction.BLOCK)
        markers = policy.confidential
        self._marker_regex = _marker_regex(markers)
        longest = max((len(s) for s in markers.strings), default=1)
        self._marker_window = max(longest - 1, markers.window if markers.patterns else 0, 1)

    @classmethod
    def from_config(cls, config: GuardrailsConfig) -> OutputGuard:
        return cls(config.output)

    @property
    def max_hold(self) -> int:
        """The most characters a stream holds back in the ordinary case (plus the PII core's token and key holds)."""
        return (self._marker_window if self._marker_regex else 0) + pii.PII_STREAM_HOLD_CHARS

    def stream(self, *, mapping: Mapping[str, str] | None = None) -> OutputStream:
        """A streaming answer's scanner; `mapping` (InputOutcome.restore_mapping) puts the prompt's originals back."""
        return OutputStream(self, mapping)

    def check(self, text: str, *, mapping: Mapping[str, str] | None = None) -> OutputOutcome:
        """A whole answer, scanned as a stream of one chunk (same result as any chunking)."""
        scanner = self.stream(mapping=mapping)
        out = scanner.feed(text) + scanner.finish()
        return OutputOutcome(out, scanner.actions)

    def check_result(self, result: ChatResult, *, mapping: Mapping[str, str] | None = None) -> OutputOutcome:
        """A unary answer with its tool calls: the text and each call's arguments (placeholders restored there too,
        so the caller's tool gets the real values). The outcome's text is the answer text; the result is updated."""
        outcome = self.check(result.text, mapping=mapping)
        actions = list(outcome.actions)
        calls = []
        for call in result.tool_calls:
            checked = self.check(call.arguments_json, mapping=mapping)
            actions.extend(checked.actions)
            calls.append(dataclasses.replace(call, arguments_json=checked.text))
        result.text = outcome.text
        result.tool_calls = calls
        return OutputOutcome(outcome.text, tuple(actions))

    def _new_marker_stream(self) -> _MarkerStream | None:
        if self._marker_regex is None:
            return None
        markers = self.policy.confidential
        return _MarkerStream(
            self._marker_regex, markers.replacement, self._marker_window, block=markers.action is MarkerAction.BLOCK
        )

    def _actions(self, found: Mapping[str, int], markers: int) -> tuple[GuardrailAction, ...]:
        actions = [
            GuardrailAction(
                "output", "secret" if kind == "SECRET" else "pii", kind, self._pii_actions[kind].value, count
            )
            for kind, count in sorted(found.items())
            if count and self._pii_actions.get(kind, PiiAction.ALLOW) is not PiiAction.ALLOW
        ]
        if markers:
            action = self.policy.confidential.action.value
            actions.append(GuardrailAction("output", "marker", "CONFIDENTIAL_MARKER", action, markers))
        return tuple(actions)

    @staticmethod
    def _raise_blocked(kinds: list[str]) -> None:
        types = ", ".join(kinds)
        raise PermissionDenied(
            f"the answer contains {types}, which this policy does not let out",
            reason="OUTPUT_BLOCKED",
            metadata={"entity_types": ",".join(kinds)},
        )
