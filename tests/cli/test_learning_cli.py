"""`gateway feedback` and `gateway profiles` against a running server process with a learned route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.insights.test_feedback import CONFIG
from tests.server.process import Server, clean_environment, gateway

KEY = "gw-cli-learning-key"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG)
    running = Server(tmp_path, {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY}, "--config", str(config))
    yield running
    running.stop()


def run(server: Server, *args: str) -> tuple[int, str, str]:
    env = {**clean_environment(), "GATEWAY_ADMIN_KEY": KEY, "GATEWAY_API_KEY": KEY}
    done = gateway(*args, "--address", server.address, env=env)
    return done.returncode, done.stdout, done.stderr


def test_rate_a_call_and_read_the_profiles(server: Server) -> None:
    code, out, err = run(server, "chat", "-m", "smart", "--no-stream", "--json", "Name a lake")
    assert code == 0, err
    call = json.loads(out)
    code, out, err = run(server, "feedback", call["id"], "--thumbs", "thumbs=up", "--score", "stars=5", "--json")
    assert code == 0, err
    assert [(r["metric"], r["quality"]) for r in json.loads(out)["recorded"]] == [("thumbs", 1.0), ("stars", 1.0)]
    code, out, err = run(server, "feedback", call["id"], "--score", "stars=9")
    assert code == 1
    assert "INVALID_ARGUMENT" in err
    assert "outside its range" in err
    code, out, err = run(server, "profiles", "--route", "smart")
    assert code == 0, err
    assert call["model"] in out
    assert call["route"]["learned"]["query_type"] in out
    assert "1.00±" in out  # quality with its uncertainty
