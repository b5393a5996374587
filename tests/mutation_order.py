"""Runs each mutant's tests cheapest first and logs what each mutant cost: a pytest plugin for `make mutants-python`
only ([tool.mutmut] pytest_add_cli_args loads it; docs/testing.md, "Python").

mutmut stops a mutant's tests at the first failure, so their order decides what a killed mutant costs. Its fork
server hands them over in set order, and its own timings count only each test's call, not the fixtures that start a
gateway or a database around it. While mutmut collects its stats (MUTANT_UNDER_TEST=stats) this plugin records what
each test costs with its set-up and tear-down; under a mutant it sorts the tests by that cost.

What a test costs is what it costs run alone, as a mutant runs it: a fixture shared by a module or the session (a
Redis server, a PostgreSQL database) is set up once in the stats run, by whichever test needs it first, so every
other test that needs it is charged that set-up too. Without that, the tests after the first looked free and ran
first, each starting the server anew under the mutant.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

# In the mutants/ folder mutmut runs pytest in, beside its own mutmut-stats.json.
COSTS = Path("mutation-test-costs.json")
# One line a mutant: its CPU and wall seconds and how many tests ran (mutmut keeps no time of a mutant its fork
# server ran). A mutant stopped at its timeout writes none.
MUTANT_LOG = Path("mutation-mutants.jsonl")

_measured: defaultdict[str, float] = defaultdict(float)
_ran: set[str] = set()
_started = [0.0]
# The set-up seconds of each fixture shared beyond one test, by its definition, in the stats run.
_shared_setup: dict[pytest.FixtureDef[object], float] = {}


def _phase() -> str:
    return os.environ.get("MUTANT_UNDER_TEST", "")


def _under_a_mutant() -> bool:
    return "__mutmut_" in _phase()


def pytest_sessionstart() -> None:
    _started[0] = time.monotonic()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not _under_a_mutant() or not COSTS.exists():
        return
    costs: dict[str, float] = json.loads(COSTS.read_text())
    # A test no stats run measured goes last: its cost is unknown.
    items.sort(key=lambda item: costs.get(item.nodeid, float("inf")))


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> Iterator[None]:
    # pytest sets up a fixture's own fixtures before this hook: the time is this fixture's alone.
    started = time.perf_counter()
    yield
    if _phase() == "stats" and fixturedef.scope != "function":
        _shared_setup[fixturedef] = time.perf_counter() - started


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    set_up_before = set(_shared_setup)
    yield
    if _phase() == "stats":
        # The shared fixtures an earlier test set up: this test alone would set them up itself.
        defs = getattr(item, "_fixtureinfo", None)
        for name in getattr(defs, "names_closure", ()):
            for fixturedef in defs.name2fixturedefs.get(name, ()):
                if fixturedef in set_up_before:
                    _measured[item.nodeid] += _shared_setup[fixturedef]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _ran.add(report.nodeid)
    if _phase() == "stats":
        _measured[report.nodeid] += report.duration


def pytest_sessionfinish(exitstatus: int) -> None:
    if _under_a_mutant():
        # Each mutant's process is forked anew: its own and its children's times start at 0.
        used = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        line = {
            "mutant": _phase(),
            "cpu_s": round(sum(u.ru_utime + u.ru_stime for u in used), 3),
            "wall_s": round(time.monotonic() - _started[0], 3),
            "tests": len(_ran),
            "exit": int(exitstatus),
        }
        with MUTANT_LOG.open("a") as log:
            log.write(json.dumps(line) + "\n")
    elif _phase() == "stats" and _measured:
        # A later stats run measures only new tests: keep what earlier ones measured.
        costs: dict[str, float] = json.loads(COSTS.read_text()) if COSTS.exists() else {}
        COSTS.write_text(json.dumps(costs | _measured, indent=1, sort_keys=True))
