"""What a guardrail did, as the audit log and the response metadata record it: type, entity type, count, action.
Never a value."""

from __future__ import annotations

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
    score: float | None = None
    """The verdict's score, for a check that scores (injection)."""
    model: str = ""
    """The version of the model behind that score."""
