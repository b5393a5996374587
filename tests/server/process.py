"""Running the `gateway` command as a separate process, as operators do: for CLI, durability and restart tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def clean_environment() -> dict[str, str]:
    """This process's environment without any gateway or provider settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gateway(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def wait_for_port(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError("server did not listen")


class Server:
    def __init__(self, state_dir: Path, env: dict[str, str], *extra: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**env, "GATEWAY_STATE_DIR": str(state_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--address", self.address, *extra],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> tuple[str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        return out, err
