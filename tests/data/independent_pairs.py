"""The verify pairs of a set another hand wrote (data/independent*/verify_pairs.jsonl), read the one way the tests and
scripts/train_verify_model.py share. A set's README says whether it is still held out: v1 (data/independent/) is the
learned verdict's training data since verify-pair-v2, v2 (data/independent-2/) since verify-pair-v3, v3
(data/independent-3/) since verify-pair-v4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

from tests.cache.near_miss_corpus import Pair

DATA: Final = Path(__file__).resolve().parents[2] / "data" / "independent"


def verify_pairs(directory: Path = DATA) -> list[Pair]:
    """The pairs of `directory`/verify_pairs.jsonl, in file order (their kinds are the set's own, not the corpus')."""
    lines = (directory / "verify_pairs.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return [Pair(r["a"], r["b"], r["same"], r["kind"]) for r in rows]
