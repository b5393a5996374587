"""scripts/score_verify_pairs.py, the command the lead runs once on a held-out set's verify pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cache.semantic.embedder import Embedder, EmbeddingModelMissing

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "score_verify_pairs.py"
PAIRS: list[dict[str, str | bool]] = [
    {"a": "Convert 5 km to miles", "b": "Convert 5 miles to km", "same": False, "kind": "direction"},
    {"a": "How do I boil an egg?", "b": "how do i boil an egg", "same": True, "kind": "typo"},
    {"a": "Best hikes near Oslo", "b": "Worst hikes near Oslo", "same": False, "kind": "superlative"},
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def test_it_prints_the_figures_and_a_row_per_kind_but_never_a_pair(tmp_path: Path) -> None:
    try:
        Embedder()
    except EmbeddingModelMissing as e:
        pytest.skip(str(e))
    (tmp_path / "verify_pairs.jsonl").write_text("\n".join(json.dumps(p) for p in PAIRS) + "\n", encoding="utf-8")
    done = run(str(tmp_path / "verify_pairs.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "precision 1.000, recall 1.000 (1 right hits, 0 wrong, 0 missed)" in done.stdout
    assert "| direction | different | 1 | 0 |" in done.stdout
    assert "| typo | same | 1 | 1 |" in done.stdout
    assert "wrong answers served, by kind: none" in done.stdout
    assert not any(str(p[side]) in done.stdout for p in PAIRS for side in ("a", "b")), "a pair's text was printed"
    assert run(str(tmp_path)).stdout == done.stdout, "the directory reads its verify_pairs.jsonl"


def test_another_file_name_is_refused_with_what_it_expects(tmp_path: Path) -> None:
    other = tmp_path / "pairs.jsonl"
    other.write_text(json.dumps(PAIRS[0]) + "\n", encoding="utf-8")
    done = run(str(other))
    assert done.returncode == 2
    assert "expected a file named verify_pairs.jsonl or its directory" in done.stderr
