"""Score the held-out sets once with the shipped scorer and with the phrasings alone; print the tables of
docs/guardrails.md (per set, per family, per language).

    .venv/bin/python scripts/injection_model/evaluate.py [--model combined]
    .venv/bin/python scripts/injection_model/evaluate.py --set data/independent-4

With --set, a folder whose injection.jsonl another hand wrote (`{"text", "label", "lang", "family", "channel"}` a
line) is scored instead, once, by the phrasings alone, the default model and the combined one (when MiniLM is
installed), in the layout of docs/guardrails.md's "On the third set another hand wrote" section: the model table, then
recall per language and per attack family and false positives per benign family.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

# Run as a script from anywhere: the held-out loader lives in the tests package at the repository's root.
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gateway.cache.semantic.embedder import EmbeddingModelMissing  # noqa: E402
from gateway.policy.guardrails.injection import InjectionScorer  # noqa: E402
from gateway.policy.guardrails.injection_minilm import shared_head  # noqa: E402
from tests.data.scoring import by, detection, read_prompts  # noqa: E402
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


def other_hand_set(directory: Path) -> None:
    """The tables of an other-hand set, each model scoring every prompt as one text at the default threshold."""
    prompts = read_prompts(directory)
    scorers = {"phrasings alone": InjectionScorer(learned=False), "default": InjectionScorer()}
    try:
        scorers["`model: combined`"] = InjectionScorer(minilm=shared_head())
    except EmbeddingModelMissing as e:
        print(f"combined model not scored: {e}\n")
    print(f"{directory}: {len(prompts)} prompts, {sum(p.attack for p in prompts)} attacks, threshold {THRESHOLD}\n")
    print("| model | precision | recall | false positives | de / es / fr / pt recall | user / tool / document false"
          " positives |\n| --- | --- | --- | --- | --- | --- |")  # fmt: skip
    per_model = {}
    for label, scorer in scorers.items():
        scores_ = [scorer.score(p.text).score for p in prompts]
        per_model[label] = scores_
        all_, lang, channel = detection(prompts, scores_), by(prompts, scores_, "lang"), by(prompts, scores_, "role")
        langs = " / ".join(
            f"{lang[k].recall:.3f}" if k in lang and lang[k].attacks else "-" for k in ("de", "es", "fr", "pt")
        )
        channels = " / ".join(
            f"{channel[k].false_positive_rate:.3f}" if k in channel and channel[k].prompts > channel[k].attacks else "-"
            for k in ("user", "tool", "document")
        )
        name = label if label != "default" else f"**{scorer.version}** (default)"
        print(f"| {name} | {all_.precision:.3f} | {all_.recall:.3f} | {all_.false_positive_rate:.3f} | {langs}"
              f" | {channels} |")  # fmt: skip
    models = [label for label in scorers if label != "phrasings alone"]
    columns = " | ".join(models)
    for field, title in (("lang", "language"), ("family", "family")):
        groups = {label: by(prompts, per_model[label], field) for label in models}
        print(f"\n| {title} | attacks | benign | recall: {columns} | false positives: {columns} |")
        print("| --- " * (3 + 2 * len(models)) + "|")
        for name, figures in groups[models[0]].items():
            recalls = " | ".join(f"{groups[m][name].recall:.2f}" if figures.attacks else "-" for m in models)
            benign = figures.prompts - figures.attacks
            fprs = " | ".join(f"{groups[m][name].false_positive_rate:.2f}" if benign else "-" for m in models)
            print(f"| {name} | {figures.attacks} | {benign} | {recalls} | {fprs} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("linear", "combined"), default="linear")
    parser.add_argument("--set", type=Path, help="score this other-hand set's folder instead (its injection.jsonl)")
    args = parser.parse_args()
    if args.set:
        other_hand_set(args.set)
        return
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
