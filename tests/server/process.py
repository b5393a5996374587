"""Running the `gateway` command as a separate process, as operators do: for CLI, durability and restart tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO


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


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def worker_pids(server: Server) -> dict[int, int]:
    """Worker index -> pid of the latest start of each, under `--workers` (from the supervisor's log)."""
    return {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"worker (\d) started \(pid (\d+)\)", server.log())}


def client_connections(pid: int, port: int) -> int:
    """Established TCP connections to local `port` that process `pid` holds (from /proc: its socket inodes in the
    kernel's TCP tables). Shows which workers of --workers took a client's connections."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def wait_for_port(port: int, proc: subprocess.Popen[str], stderr: IO[str] | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if stderr is not None:
                stderr.seek(0)
            raise AssertionError(f"server exited early: {stderr.read() if stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError("server did not listen")


class Server:
    """`gateway serve` in a child process. Its output goes to files, not pipes: a chatty server (DEBUG logs) would
    otherwise block on a full pipe that nobody reads until the end."""

    def __init__(self, state_dir: Path, env: dict[str, str], *extra: str, ready: str | None = None) -> None:
        """`ready`: a pattern of a log line to wait for after the port listens (with --workers, the supervisor's
        line saying every worker serves)."""
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Metrics on a free port: tests run servers side by side, and beside a developer's own gateway on 9464.
        self.env = {"GATEWAY_METRICS_ADDR": "127.0.0.1:0", **env, "GATEWAY_STATE_DIR": str(state_dir)}
        self._stdout = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in output()
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - closed in output()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--address", self.address, *extra],
            env=self.env,
            stdout=self._stdout,
            stderr=self._stderr,
            text=True,
        )
        wait_for_port(self.port, self.proc, self._stderr)
        if ready is not None:
            self.wait_for_log(ready)

    def log(self, *, stdout: bool = False) -> str:
        """What the server printed to stderr (or stdout) so far."""
        # pread: the server writes through the same open file, so moving its offset would make it overwrite.
        fd = (self._stdout if stdout else self._stderr).fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")

    def wait_for_log(self, pattern: str, *, count: int = 1, timeout: float = 20.0) -> list[re.Match[str]]:
        """Waits until stderr holds `count` lines matching `pattern`; returns their matches."""
        deadline = time.monotonic() + timeout
        while True:
            found = list(re.finditer(pattern, self.log()))
            if len(found) >= count:
                return found
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {count} log lines matching {pattern!r}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> tuple[str, str]:
        """Stops the server gracefully (SIGTERM); returns what it printed to stdout and stderr."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return self.output()

    def kill(self) -> tuple[str, str]:
        self.proc.kill()
        self.proc.wait(timeout=10)
        return self.output()

    def output(self) -> tuple[str, str]:
        texts = []
        for file in (self._stdout, self._stderr):
            file.seek(0)
            texts.append(file.read())
            file.close()
        return texts[0], texts[1]
