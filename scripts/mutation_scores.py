"""Mutation scores per module from `mutmut results --all true` on stdin, then the mutants that were not killed.

    cd mutants-python && mutmut results --all true | python ../scripts/mutation_scores.py

A mutant that made its tests time out counts as killed (the planted bug hung a call, and a test noticed); one no
selected test reaches is not: it is an untested line.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

_LINE = re.compile(r"^\s*(?P<name>\S+)__mutmut_\d+: (?P<status>.+)$")
_CAUGHT = ("killed", "timeout")


def module_of(mutant: str) -> str:
    """'gateway.ledger.budgets.xǁBudgetBookǁreserve' -> 'gateway.ledger.budgets'."""
    parts = mutant.split(".")
    while parts and not parts[-1].startswith(("x_", "xǁ")):
        parts.pop()
    return ".".join(parts[:-1])


def main() -> None:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    left: list[str] = []
    for line in sys.stdin:
        found = _LINE.match(line)
        if found is None:
            continue
        status = found["status"].strip()
        counts[module_of(found["name"])][status] += 1
        if status not in (*_CAUGHT, "not checked"):
            left.append(line.strip())
    print(
        f"{'module':34} {'mutants':>7} {'killed':>6} {'timeout':>7} {'survived':>8} {'no tests':>8} "
        f"{'unchecked':>9} {'score':>6}"
    )
    for module, count in sorted(counts.items()):
        total = sum(count.values())
        caught = sum(count[s] for s in _CAUGHT)
        print(
            f"{module:34} {total:7} {count['killed']:6} {count['timeout']:7} {count['survived']:8} "
            f"{count['no tests']:8} {count['not checked']:9} {caught / total:6.1%}"
        )
    if left:
        print("\nnot killed (mutmut show NAME prints the change):")
        print("\n".join(f"  {line}" for line in left))


if __name__ == "__main__":
    main()
