"""`gateway shadow report` against a running server process whose route copies its calls to a shadow model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serving import run, serving
from tests.server.process import Server

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 8, seed: 1}}
models:
  - {name: main, provider: sim, input_cost_per_mtok: 10, output_cost_per_mtok: 10}
  - {name: candidate, provider: sim, input_cost_per_mtok: 1, output_cost_per_mtok: 1}
routes:
  - name: mirrored
    targets: [{model: main}]
    shadow: {model: candidate, share: 1.0, max_usd_per_day: 5}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path, CONFIG) as running:
        yield running


def test_shadow_report(server: Server) -> None:
    code, out, err = run(server, "shadow", "report", "mirrored")
    assert code == 0, err
    assert "no shadow copies of route mirrored" in out
    for i in range(3):
        code, out, err = run(server, "chat", "-m", "mirrored", "--no-stream", "--json", f"Name a sea {i}")
        assert code == 0, err
        assert json.loads(out)["model"] == "main"
    deadline = time.monotonic() + 30  # the copies run after each answer, in the server's background
    while True:
        code, out, err = run(server, "shadow", "report", "mirrored", "--json")
        assert code == 0, err
        found = json.loads(out)
        if (found and found[0].get("answered") == "3") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [summary] = found
    assert (summary["primary_model"], summary["shadow_model"], summary["mirrored"]) == ("main", "candidate", "3")
    code, out, err = run(server, "shadow", "report", "mirrored")
    assert code == 0, err
    header, row = out.splitlines()[1:]
    assert header.split()[:4] == ["PRIMARY", "SHADOW", "MIRRORED", "ANSWERED"]
    assert row.split()[:4] == ["main", "candidate", "3", "3"]
