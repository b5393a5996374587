"""`gateway chat --defer`, `gateway deferred` and the deferred columns of `gateway usage`, against a server process
on the simulated provider."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serving import run, serving
from tests.server.process import Server

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 8}}
models:
  - {name: fast, provider: sim, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0}
deferral: {max_batch: 1}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path, CONFIG) as running:
        yield running


def test_a_deferred_chat_its_answer_by_id_and_the_usage_report(server: Server) -> None:
    code, out, err = run(server, "chat", "-m", "fast", "--defer", "30", "Summarise the report")
    assert code == 0, err
    found = re.search(r"deferred call ([0-9a-f]{32}); if this command stops: gateway deferred \1", err)
    assert found is not None, err
    assert "[fast (simulated): " in out
    code, out, err = run(server, "deferred", found.group(1))
    assert code == 0, err
    assert "[fast (simulated): " in out
    code, out, err = run(server, "deferred", found.group(1), "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "DEFERRED_STATE_DONE"
    code, _, err = run(server, "deferred", "0123456789abcdef")
    assert code != 0
    assert "no deferred call '0123456789abcdef'" in err
    code, out, err = run(server, "usage", "--group-by", "model")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split()[-6:] == ["DEFERRED", "DEFERRED", "$", "AT", "ONCE", "$"]
    model, requests, _, _, _, cost, _, _, deferred, deferred_cost, at_once = row.split()
    assert (model, requests, deferred) == ("fast", "1", "1")
    assert deferred_cost == cost == at_once  # no shared prefix, no price window: nothing saved
