"""Request classification from findings and a key's floor."""

from __future__ import annotations

import pytest

from gateway.config.guardrails import ClassificationPolicy
from gateway.policy.guardrails import classify
from gateway.records.classification import Classification


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        ({}, Classification.PUBLIC),
        ({"EMAIL_ADDRESS": 0}, Classification.PUBLIC),
        ({"IP_ADDRESS": 2}, Classification.INTERNAL),
        ({"EMAIL_ADDRESS": 1}, Classification.CONFIDENTIAL),
        ({"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}, Classification.RESTRICTED),
        ({"US_SSN": 1}, Classification.RESTRICTED),
        ({"SECRET": 1}, Classification.RESTRICTED),
    ],
)
def test_findings_raise_the_level(found: dict[str, int], expected: Classification) -> None:
    assert classify(found, ClassificationPolicy()) is expected


def test_floor_and_baseline() -> None:
    policy = ClassificationPolicy.model_validate({"baseline": "internal", "kinds": {"IP_ADDRESS": "public"}})
    assert classify({"IP_ADDRESS": 1}, policy) is Classification.INTERNAL
    assert classify({}, policy, Classification.RESTRICTED) is Classification.RESTRICTED
