"""Score the held-out sets once with the shipped scorer and with the phrasings alone; print the tables of
docs/guardrails.md (per set, per family, per language).

    .venv/bin/python scripts/injection_model/evaluate.py [--model combined]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

# Run as a script from anywhere: the held-out loader lives in the tests package at the repository's root.
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.policy.guardrails.injection import InjectionScorer  # noqa: E402
from gateway.policy.guardrails.injection_minilm import shared_head  # noqa: E402
from tests.policy.guardrails.heldout import OTHER_HAND, Figures, Row, held_out_sets, measure, scores  # noqa: E402

THRESHOLD = 0.8


def row(label: str, new: Figures, old: Figures) -> str:
    return (
        f"| {label} | {new.prompts} | {new.precision:.3f} | **{new.recall:.3f}** | {new.false_positive_rate:.3f}"
        f" | {old.precision:.3f} | {old.recall:.3f} |"
    )


def grouped(rows: list[Row], new: list[float], old: list[float], key: str) -> dict[str, tuple[Figures, Figures]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[getattr(r, key)].append(i)
    return {
        name: (
            measure([new[i] for i in idx], [rows[i] for i in idx], THRESHOLD),
            measure([old[i] for i in idx], [rows[i] for i in idx], THRESHOLD),
        )
        for name, idx in sorted(groups.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("linear", "combined"), default="linear")
    args = parser.parse_args()
    learned = InjectionScorer(minilm=shared_head() if args.model == "combined" else None)
    phrasings = InjectionScorer(learned=False)
    header = (
        "| {} | prompts | precision | recall | FPR | phrasings alone: precision | recall |\n"
        "| --- | --- | --- | --- | --- | --- | --- |"
    )
    print(f"model {learned.version}, threshold {THRESHOLD}\n")
    print(header.format("held-out set"))
    per_set = {}
    for name, rows in held_out_sets().items():
        new, old = scores(learned, rows), scores(phrasings, rows)
        per_set[name] = (rows, new, old)
        print(row(name, measure(new, rows, THRESHOLD), measure(old, rows, THRESHOLD)))
    for name, (rows, new, old) in per_set.items():
        print(f"\n{name}, per family\n")
        print(header.format("family"))
        for family, (n, o) in grouped(rows, new, old, "family").items():
            print(row(family, n, o))
    rows, new, old = per_set[OTHER_HAND]
    print(f"\n{OTHER_HAND}, per language\n")
    print(header.format("language"))
    for lang, (n, o) in grouped(rows, new, old, "lang").items():
        print(row(lang, n, o))
    print(f"\n{OTHER_HAND}, per role\n")
    print(header.format("role"))
    for role, (n, o) in grouped(rows, new, old, "role").items():
        print(row(role, n, o))


if __name__ == "__main__":
    main()
