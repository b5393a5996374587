"""`gateway batch` end to end against `gateway serve` on the embedded default config (no API key): the simulated
provider's batch API ends the batch seconds after it was made, with answers like the simulated chat's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    lines = [
        {
            "custom_id": f"task-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Summarise {i}"}]},
        }
        for i in range(3)
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    code, out, err = run(server, "batch", "submit", str(path), "-m", "sim-fast", "--json")
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
