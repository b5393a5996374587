"""What a guardrail did, as the audit log and the response metadata record it: type, entity type, count, action.
Never a value."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Stage = Literal["input", "output", "usage"]
Check = Literal["pii", "secret", "injection", "content", "marker", "anomaly"]


@dataclass(frozen=True, slots=True)
class GuardrailAction:
    stage: Stage
    check: Check
    entity: str
    """The entity type (EMAIL_ADDRESS), rule (blocked_keywords, topic:medical) or metric (request_rate)."""
    action: str
    """What was done: redact, mask, block, flag, throttle, restore (placeholders put back in an answer)."""
    count: int = 1

    def label(self) -> str:
        """`input.pii.EMAIL_ADDRESS=redact:2`: one compact item of the response metadata."""
        return f"{self.stage}.{self.check}.{self.entity}={self.action}:{self.count}"


def actions_header(actions: Iterable[GuardrailAction]) -> str:
    """All actions as one metadata value (`x-guardrail-actions`), comma-separated; empty when none."""
    return ",".join(action.label() for action in actions)
