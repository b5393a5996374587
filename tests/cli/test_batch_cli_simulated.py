"""`gateway batch` end to end against `gateway serve` on the embedded default config (no API key): the simulated
provider's batch API ends the batch seconds after it was made, with answers like the simulated chat's; and a
simulated batch cancelled before it ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.batches.harness import openai_batch_file
from tests.cli.serving import serving
from tests.server.process import Server, clean_environment, gateway

KEY = "gw-cli-test-key"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY})
    yield running
    running.stop()


def run(server: Server, *args: str) -> tuple[int, str, str]:
    done = gateway(*args, "--address", server.address, env={**clean_environment(), "GATEWAY_API_KEY": KEY})
    return done.returncode, done.stdout, done.stderr


def test_a_batch_runs_end_to_end_on_the_default_config(server: Server, tmp_path: Path) -> None:
    code, out, err = run(server, "batch", "submit", str(openai_batch_file(tmp_path)), "-m", "sim-fast", "--json")
    assert code == 0, err
    submitted = json.loads(out)
    assert submitted["provider"] == "simulated-fast"

    code, out, err = run(server, "batch", "results", submitted["id"], "--follow")
    assert code == 0, err
    results = {r["custom_id"]: r for r in map(json.loads, out.splitlines())}
    assert set(results) == {"task-0", "task-1", "task-2"}
    answer = results["task-1"]["answer"]
    assert answer["message"]["content"].startswith("[simulated sim-fast]")
    assert int(answer["usage"]["completion_tokens"]) > 0

    code, out, err = run(server, "batch", "status", submitted["id"])
    assert code == 0, err
    assert "completed" in out
    assert "3 answered" in out


SLOW_BATCHES = """
providers:
  - {name: sim, type: simulated, simulation: {batch_delay_s: 3600}}
models:
  - {name: slow-batch, provider: sim, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, tokenizer: o200k_base}
batches: {poll_interval_s: 1}
"""


def test_a_simulated_batch_cancelled_before_it_ends(tmp_path: Path) -> None:
    with serving(tmp_path, SLOW_BATCHES) as server:
        code, out, err = run(server, "batch", "submit", str(openai_batch_file(tmp_path)), "-m", "slow-batch", "--json")
        assert code == 0, err
        batch_id = json.loads(out)["id"]
        code, _, err = run(server, "batch", "cancel", batch_id)
        assert code == 0, err
        code, out, err = run(server, "batch", "results", batch_id, "--follow")
        assert code == 0, err
        results = [json.loads(line) for line in out.splitlines()]
        assert sorted(r["custom_id"] for r in results) == ["task-0", "task-1", "task-2"]
        assert {r["error"]["reason"] for r in results} == {"BATCH_CANCELLED"}
        code, out, err = run(server, "batch", "status", batch_id)
        assert code == 0, err
        assert "cancelled" in out
