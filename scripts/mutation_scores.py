"""Mutation scores per module from `mutmut results --all true` on stdin, then the mutants that were not killed.

    cd mutants-python && mutmut results --all true | python ../scripts/mutation_scores.py mutants/mutation-mutants.jsonl

A mutant that made its tests time out counts as killed (the planted bug hung a call, and a test noticed); one no
selected test reaches is not: it is an untested line. The optional argument is the log tests/mutation_order.py
writes, one line a mutant checked: the table then gives the CPU seconds of each module's mutants, the last check of
each (a mutant stopped at its timeout writes no line and counts its timeout instead).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

_LINE = re.compile(r"^\s*(?P<mutant>(?P<name>\S+)__mutmut_\d+): (?P<status>.+)$")
_CAUGHT = ("killed", "timeout")


def module_of(mutant: str) -> str:
    """'gateway.ledger.budgets.xǁBudgetBookǁreserve' -> 'gateway.ledger.budgets'."""
    parts = mutant.split(".")
    while parts and not parts[-1].startswith(("x_", "xǁ")):
        parts.pop()
    return ".".join(parts[:-1])


def cpu_by_mutant(log: Path) -> dict[str, float]:
    """The CPU seconds of each mutant's last check (none before the first mutant is checked)."""
    if not log.exists():
        return {}
    lines = (json.loads(line) for line in log.read_text().splitlines() if line)
    return {line["mutant"]: line["cpu_s"] for line in lines}


def main() -> None:
    cpu = cpu_by_mutant(Path(sys.argv[1])) if len(sys.argv) > 1 else {}
    cpu_by_module: Counter[str] = Counter()
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    left: list[str] = []
    for line in sys.stdin:
        found = _LINE.match(line)
        if found is None:
            continue
        status = found["status"].strip()
        module = module_of(found["name"])
        counts[module][status] += 1
        cpu_by_module[module] += cpu.get(found["mutant"], 0.0)
        if status not in (*_CAUGHT, "not checked"):
            left.append(line.strip())
    print(
        f"{'module':34} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
        f"{'unchecked':>9} {'score':>6} {'cpu s':>6}"
    )
    for module, count in sorted(counts.items()):
        total = sum(count.values())
        caught = sum(count[s] for s in _CAUGHT)
        print(
            f"{module:34} {total:7} {count['killed']:6} {count['timeout']:7} {count['survived']:8} "
            f"{count['no tests']:8} {count['not checked']:9} {caught / total:6.1%} {cpu_by_module[module]:6.0f}"
        )
    if left:
        print("\nnot killed (mutmut show NAME prints the change):")
        print("\n".join(f"  {line}" for line in left))


if __name__ == "__main__":
    main()
