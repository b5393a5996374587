"""The `gateway` command as an operator uses it: serve (first-start key, config errors, graceful shutdown), and the
client commands against a running server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.process import Server, clean_environment, client_connections, gateway

KEY_LINE = re.compile(r"^\s+(gw-\S+)$", re.MULTILINE)


@pytest.fixture
def clean_env() -> dict[str, str]:
    return clean_environment()


@pytest.fixture
def server(tmp_path: Path, clean_env: dict[str, str]) -> Iterator[Server]:
    running = Server(tmp_path, {**clean_env, "GATEWAY_BOOTSTRAP_KEY": "gw-cli-test-key"})
    yield running
    running.stop()


def test_first_start_prints_a_key_once_and_keeps_only_its_hash(tmp_path: Path, clean_env: dict[str, str]) -> None:
    first = Server(tmp_path, clean_env)
    out, _ = first.stop()
    keys = KEY_LINE.findall(out)
    assert len(keys) == 1, out
    key = keys[0]
    stored = (tmp_path / "bootstrap_key.sha256").read_text()
    assert key not in stored
    assert len(stored.strip()) == 64

    second = Server(tmp_path, clean_env)
    try:
        listed = gateway("models", "--address", second.address, env={**clean_env, "GATEWAY_API_KEY": key})
        assert listed.returncode == 0, listed.stderr
        assert "sim-fast (simulated)" in listed.stdout
    finally:
        out, err = second.stop()
    assert not KEY_LINE.findall(out), "the key must be shown only on the first start"
    assert key not in out + err


def test_invalid_config_exits_with_the_line(tmp_path: Path, clean_env: dict[str, str]) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("providers:\n  - name: p\n    type: nope\nmodels:\n  - name: m\n    provider: p\n")
    result = gateway("serve", "--config", str(config), env=clean_env)
    assert result.returncode == 2
    assert f"{config}:3: providers[0].type" in result.stderr


def test_models_chat_and_count_tokens(server: Server, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "GATEWAY_API_KEY": "gw-cli-test-key"}
    models = gateway("models", "--json", "--address", server.address, env=env)
    assert models.returncode == 0, models.stderr
    assert {m["id"] for m in json.loads(models.stdout)} == {"sim-fast", "sim-smart", "sim-embed"}

    streamed = gateway("chat", "-m", "sim-fast", "--address", server.address, "Hello", env=env)
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout.startswith("[simulated sim-fast]")
    assert "(simulated)" in streamed.stdout
    assert "completion tokens" in streamed.stdout

    answer = json.loads(
        gateway("chat", "-m", "sim-fast", "--json", "--address", server.address, "Hello", env=env).stdout
    )
    assert answer["simulated"] is True
    assert answer["message"]["content"] in streamed.stdout

    piped = gateway(
        "count-tokens", "-m", "sim-fast", "--json", "--address", server.address, "-", env=env, input="hello world"
    )
    assert json.loads(piped.stdout) == {"tokens": 2, "exact": True, "tokenizer": "o200k_base"}


def test_embed(server: Server, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "GATEWAY_API_KEY": "gw-cli-test-key"}
    shown = gateway("embed", "-m", "sim-embed", "--address", server.address, "first text", "second", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "[0] [" in shown.stdout
    assert "sim-embed (simulated): 2 vectors of 256 dimensions" in shown.stdout
    as_json = gateway("embed", "-m", "sim-embed", "--json", "--address", server.address, "first text", env=env)
    response = json.loads(as_json.stdout)
    assert len(response["embeddings"][0]["values"]) == 256
    assert response["simulated"]


def test_client_errors_are_readable(server: Server, clean_env: dict[str, str]) -> None:
    unknown = gateway(
        "chat", "-m", "nope", "--address", server.address, "hi", env={**clean_env, "GATEWAY_API_KEY": "gw-cli-test-key"}
    )
    assert unknown.returncode == 1
    assert "error: INVALID_ARGUMENT: unknown model 'nope'" in unknown.stderr
    wrong = gateway("models", "--address", server.address, env={**clean_env, "GATEWAY_API_KEY": "gw-wrong"})
    assert wrong.returncode == 1
    assert "UNAUTHENTICATED" in wrong.stderr
    assert "gw-wrong" not in wrong.stderr
    missing = gateway("models", "--address", server.address, env=clean_env)
    assert missing.returncode != 0
    assert "GATEWAY_API_KEY" in missing.stderr


def test_sigterm_lets_an_in_flight_stream_finish(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "GATEWAY_BOOTSTRAP_KEY": "gw-cli-test-key"}
    running = Server(tmp_path, env)
    client = subprocess.Popen(
        [sys.executable, "-m", "gateway", "chat", "-m", "sim-smart", "--address", running.address, "a long answer"],
        env={**env, "GATEWAY_API_KEY": "gw-cli-test-key"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The client's interpreter may take seconds to start on a busy machine: stop the server only once its call is in
    # flight (connected, then half a second for the request; sim-smart answers in about 2 s).
    deadline = time.monotonic() + 30
    while not client_connections(running.proc.pid, running.port):
        assert client.poll() is None, client.communicate()[1]
        assert time.monotonic() < deadline, "the client never connected"
        time.sleep(0.02)
    time.sleep(0.5)
    _out, err = running.stop()
    answer, client_err = client.communicate(timeout=30)
    assert client.returncode == 0, client_err
    assert "completion tokens" in answer
    assert running.proc.returncode == 0
    assert "stopped" in err
