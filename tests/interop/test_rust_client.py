"""A client in another language, generated from proto/ alone, calls the real gateway (issue 2's "done when").

The Rust client in clients/rust/ is built once per session (its build.rs generates the stubs from
proto/llmgateway/v1/gateway.proto); the gateway runs as `python -m gateway serve` on the embedded default config,
exactly as a user starts it. Token numbers are not pinned: only their shape (positive, total = prompt + completion).
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The first test pays for a clean `cargo build` (about 25 s on 2 idle cores, minutes on a busy one). Every
# subprocess below has its own timeout, so a hang still fails well before this.
pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[2]
CLIENT_CRATE = REPO / "clients" / "rust"
TEST_KEY = "gw-interop-test-key-0123456789"
CALL_TIMEOUT_S = 60
USAGE_LINE = re.compile(
    r"^usage: prompt_tokens=(\d+) completion_tokens=(\d+) total_tokens=(\d+) cost_usd=([\d.]+)$", re.M
)


# run_client(*args, key=TEST_KEY): runs the built client against the gateway; key=None sends no key.
RunClient = Callable[..., subprocess.CompletedProcess[str]]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float


def parse_usage(stdout: str) -> Usage:
    match = USAGE_LINE.search(stdout)
    assert match, f"no usage line in:\n{stdout}"
    prompt, completion, total, cost = match.groups()
    return Usage(int(prompt), int(completion), int(total), float(cost))


def assert_plausible(usage: Usage) -> None:
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.cost_usd > 0


@pytest.fixture(scope="session")
def client_binary() -> Path:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: the Rust interop client cannot be built")
    # --locked: the committed Cargo.lock is what CI builds; a drifted lock file fails here, not silently.
    build = subprocess.run(
        [cargo, "build", "--locked", "--quiet", "--manifest-path", str(CLIENT_CRATE / "Cargo.toml")],
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    assert build.returncode == 0, f"cargo build of clients/rust failed:\n{build.stderr}"
    binary = CLIENT_CRATE / "target" / "debug" / "gateway-client"
    assert binary.is_file()
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real gateway in a subprocess, on the embedded default config (simulated sim-fast and sim-smart)."""
    state_dir = tmp_path_factory.mktemp("gateway-state")
    log_path = state_dir / "gateway.log"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}  # no real providers, no client key
    env |= {
        "GATEWAY_BOOTSTRAP_KEY": TEST_KEY,
        "GATEWAY_STATE_DIR": str(state_dir),
        "GATEWAY_METRICS_ADDR": "127.0.0.1:0",
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--address", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"the gateway exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not listen on port {port} within 30 s:\n{log_path.read_text()}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)  # graceful shutdown path
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def run_client(client_binary: Path, gateway_address: str) -> RunClient:
    def run(*args: str, key: str | None = TEST_KEY) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "GATEWAY_API_KEY"}
        if key is not None:
            env["GATEWAY_API_KEY"] = key
        return subprocess.run(
            [str(client_binary), "--address", gateway_address, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=CALL_TIMEOUT_S,
            check=False,
        )

    return run


def test_models_lists_the_simulated_models(run_client: RunClient) -> None:
    result = run_client("models")
    assert result.returncode == 0, result.stderr
    rows = {line.split("\t")[0]: line for line in result.stdout.splitlines()}
    assert {"sim-fast", "sim-smart"} <= rows.keys()
    assert "provider=simulated-fast (simulated)" in rows["sim-fast"]
    assert rows["sim-fast"].endswith("SIMULATED")


def test_chat_returns_the_simulated_answer_and_usage(run_client: RunClient) -> None:
    result = run_client("chat", "--model", "sim-fast", "What does a gateway do?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[simulated sim-fast] ")
    assert "model: sim-fast (provider simulated-fast, SIMULATED)" in result.stdout
    assert "finish_reason: stop" in result.stdout
    assert_plausible(parse_usage(result.stdout))


def test_stream_yields_many_chunks_with_the_same_text_and_final_usage(run_client: RunClient) -> None:
    prompt = "Stream me an answer about gRPC."
    streamed = run_client("stream", "--model", "sim-fast", prompt)
    whole = run_client("chat", "--model", "sim-fast", prompt)
    assert streamed.returncode == 0, streamed.stderr
    assert whole.returncode == 0, whole.stderr

    chunks = re.search(r"^chunks: (\d+) \(first after [\d.]+ ms\)$", streamed.stdout, re.M)
    assert chunks, streamed.stdout
    assert int(chunks.group(1)) >= 5, "the answer should arrive as several chunks, not one"
    # The simulated provider is deterministic: the deltas, joined, are the unary answer.
    text = streamed.stdout.split("\n--\n")[0]
    assert text == whole.stdout.split("\n--\n")[0]
    assert text.startswith("[simulated sim-fast] ")
    usage = parse_usage(streamed.stdout)
    assert_plausible(usage)
    assert usage == parse_usage(whole.stdout)


def test_stream_output_arrives_before_the_answer_ends(client_binary: Path, gateway_address: str) -> None:
    """sim-smart takes ~2 s to finish: its first delta must be on stdout long before the process exits."""
    process = subprocess.Popen(
        [str(client_binary), "--address", gateway_address, "stream", "--model", "sim-smart", "Tell me a long story."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"GATEWAY_API_KEY": TEST_KEY},
    )
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=CALL_TIMEOUT_S), "no output from the stream"
    first_output_at = time.monotonic()
    first = os.read(process.stdout.fileno(), 65536)
    rest, stderr = process.communicate(timeout=CALL_TIMEOUT_S)
    finished_at = time.monotonic()
    assert process.returncode == 0, stderr.decode()
    assert (first + rest).startswith(b"[simulated sim-smart]")
    assert b"\n--\n" not in first, "the whole answer came at once"
    assert finished_at - first_output_at > 0.5
    assert_plausible(parse_usage((first + rest).decode()))


def test_count_tokens(run_client: RunClient) -> None:
    result = run_client("count-tokens", "--model", "sim-fast", "hello interop world")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"tokens: (\d+) \((exact|estimate), tokenizer \S+\)\n", result.stdout)
    assert match, result.stdout
    assert int(match.group(1)) > 0


def test_unknown_model_is_invalid_argument_with_error_info(run_client: RunClient) -> None:
    result = run_client("chat", "--model", "no-such-model", "hi")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: InvalidArgument: ")
    assert "no-such-model" in result.stderr
    # Decoded from the grpc-status-details-bin trailer (google.rpc.ErrorInfo).
    assert "reason: UNKNOWN_MODEL (domain llmgateway.v1)" in result.stderr


def test_unknown_model_in_a_stream_is_invalid_argument(run_client: RunClient) -> None:
    result = run_client("stream", "--model", "no-such-model", "hi")
    assert result.returncode == 1
    assert result.stderr.startswith("error: InvalidArgument: ")


@pytest.mark.parametrize("key", ["gw-wrong-key-0123456789", None], ids=["wrong-key", "no-key"])
def test_bad_key_is_unauthenticated(run_client: RunClient, key: str | None) -> None:
    for command in (["models"], ["chat", "--model", "sim-fast", "hi"], ["stream", "--model", "sim-fast", "hi"]):
        result = run_client(*command, key=key)
        assert result.returncode == 1, command
        assert result.stderr.startswith("error: Unauthenticated: "), (command, result.stderr)


def test_client_deadline_is_deadline_exceeded(run_client: RunClient) -> None:
    # sim-smart's first token comes after 250 ms; a 50 ms deadline cannot be met.
    result = run_client("--timeout", "0.05", "chat", "--model", "sim-smart", "hi")
    assert result.returncode == 1
    assert result.stderr.startswith("error: DeadlineExceeded: "), result.stderr


def test_unreachable_gateway_is_unavailable(client_binary: Path) -> None:
    result = subprocess.run(
        [str(client_binary), "--address", f"http://127.0.0.1:{free_port()}", "models"],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: Unavailable: cannot connect")
