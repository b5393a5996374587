"""Shadow traffic: a share of a route's calls, once answered, copied to the route's shadow model for comparison.

Last but one in the chain, so the answer this stage keeps for the comparison is the one the caller got (after the
output guardrails). The copy goes out from the exit hook, in the background: the caller never waits for it.
"""

from __future__ import annotations

from typing import Protocol

from gateway.chat import ChatDelta
from gateway.pipeline.call import CallKind, ChatCall
from gateway.pipeline.stage import BaseStage


class Mirror(Protocol):
    def wants(self, call: ChatCall) -> bool:
        """Whether to copy this call: its route has a shadow, and the draw for its share says so."""

    def launch(self, call: ChatCall, answer: str) -> None:
        """Sends the copy in the background; `answer` is the primary's, as the caller got it."""


_MIRRORED = frozenset((CallKind.CHAT, CallKind.STREAM))


class MirrorToShadow(BaseStage):
    name = "shadow"

    def __init__(self, mirror: Mirror) -> None:
        self._mirror = mirror

    def enter(self, call: ChatCall) -> None:
        # Callers' calls only: not a copy, nor a Replay or Compare someone runs by hand.
        if call.kind in _MIRRORED and self._mirror.wants(call):
            call.filters.append(_AnswerText())

    def exit(self, call: ChatCall, error: BaseException | None) -> None:
        if error is not None or not call.answer.complete:
            return
        text = next((f for f in call.filters if isinstance(f, _AnswerText)), None)
        if text is not None:
            self._mirror.launch(call, "".join(text.parts))


class _AnswerText:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[str] = []

    def chunk(self, delta: ChatDelta) -> None:
        if delta.text:
            self.parts.append(delta.text)

    def finish(self) -> None:
        return None
