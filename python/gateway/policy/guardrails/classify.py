"""A request's data classification: the highest of a floor (from its key's labels), the policy's baseline, and the
level of each entity type the scanners found."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.guardrails import ClassificationPolicy
from gateway.records.classification import Classification

_PREFIXES = ("classification:", "classification=", "data:", "data=")


def classify(
    found: Mapping[str, int], policy: ClassificationPolicy, floor: Classification = Classification.PUBLIC
) -> Classification:
    """`found` is entity type -> count (types with a count of 0 are ignored)."""
    level = max(floor, policy.baseline)
    for kind, count in found.items():
        if count > 0:
            level = max(level, policy.level(kind))
    return level
