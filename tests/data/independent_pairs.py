"""The verify pairs of a set another hand wrote (data/independent*/verify_pairs.jsonl), read the one way the tests and
scripts/train_verify_model.py share. A set's README says whether it is still held out: v1 (data/independent/) is the
learned verdict's training data since verify-pair-v2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DATA: Final = Path(__file__).resolve().parents[2] / "data" / "independent"


@dataclass(frozen=True, slots=True)
class Pair:
    cached: str
    asked: str
    same: bool
    kind: str


def verify_pairs(directory: Path = DATA) -> list[Pair]:
    """The pairs of `directory`/verify_pairs.jsonl, in file order."""
    lines = (directory / "verify_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Pair(r["a"], r["b"], r["same"], r["kind"]) for r in rows]
