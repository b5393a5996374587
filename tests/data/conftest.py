"""What every held-out set's test module scores: its own set, named by the module's `DATA` folder."""

from __future__ import annotations

import pytest

from gateway.policy.guardrails.injection import InjectionScorer
from tests.data.scoring import read_prompts, scored
from tests.policy.guardrails.heldout import Row


@pytest.fixture(scope="module")
def prompts(request: pytest.FixtureRequest) -> list[Row]:
    """The module's set's injection texts, with their labels."""
    return read_prompts(request.module.DATA)


@pytest.fixture(scope="module")
def injection_scores(prompts: list[Row]) -> list[float]:
    """The default model's score of each text."""
    return scored(prompts, InjectionScorer())
