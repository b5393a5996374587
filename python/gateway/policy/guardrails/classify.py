"""A request's data classification: the highest of a floor (from its key's labels), the policy's baseline, and the
level of each entity type the scanners found."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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


def floor_from_labels(labels: Iterable[str]) -> Classification:
    """The highest classification a key's labels name: `restricted`, `classification:confidential`,
    `data=internal`... (case-insensitive). Labels that name no level are ignored; no such label gives PUBLIC."""
    level = Classification.PUBLIC
    for label in labels:
        name = label.strip().lower()
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                break
        try:
            level = max(level, Classification.parse(name))
        except ValueError:
            continue
    return level
