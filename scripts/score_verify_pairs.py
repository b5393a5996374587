"""Scores the semantic cache's verdict, as configured by default, on one set of labelled verify pairs, once.

    .venv/bin/python scripts/score_verify_pairs.py data/independent-4/verify_pairs.jsonl

The file holds one JSON object a line: {"a": cached prompt, "b": asked prompt, "same": bool, "kind": str} (a
directory is read as its verify_pairs.jsonl). It prints precision, recall and the counts, then one markdown row per
kind, in the layout of docs/benchmarks.md's tables ("| kind | same? | pairs | served |"), and how many wrong answers
were served of each kind. It never prints a pair: a held-out set stays held out only while nobody reads its rows or
its misses (each set's README says so), so the per-kind counts are all it shows. Needs MiniLM (`make install`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "python")]

from gateway.cache.semantic.embedder import Embedder  # noqa: E402
from gateway.cache.semantic.evaluation import Scores, pair_similarities, score_matcher  # noqa: E402
from gateway.cache.semantic.matcher import SemanticMatcher  # noqa: E402
from tests.data.independent_pairs import verify_pairs  # noqa: E402


def report(scores: Scores) -> str:
    """The summary line and the per-kind table, without any pair's text."""
    lines = [
        f"{scores.label}: precision {scores.precision:.3f}, recall {scores.recall:.3f} ({scores.true_hits} right hits,"
        f" {scores.false_hits} wrong, {scores.missed} missed)",
        "",
        "| kind | same? | pairs | served |",
        "| --- | --- | --- | --- |",
    ]
    for kind, score in scores.kinds.items():
        lines.append(f"| {kind} | {'same' if score.same else 'different'} | {score.pairs} | {score.served} |")
    wrong = {kind: score.served for kind, score in scores.kinds.items() if not score.same and score.served}
    lines += ["", "wrong answers served, by kind: " + (", ".join(f"{k} {n}" for k, n in wrong.items()) or "none")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", type=Path, help="a verify_pairs.jsonl, or the directory that holds one")
    path: Path = parser.parse_args().pairs
    directory = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name != "verify_pairs.jsonl":
        parser.error(f"expected a file named verify_pairs.jsonl or its directory, got {path}")
    pairs = verify_pairs(directory)
    scores = score_matcher(pairs, pair_similarities(Embedder(), pairs).tolist(), SemanticMatcher())
    print(report(scores))


if __name__ == "__main__":
    main()
