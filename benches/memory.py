"""Memory of a gateway's processes, idle and after a short load, from /proc/<pid>/smaps_rollup.

RSS counts every page a process maps; PSS divides each page among the processes mapping it, so forked workers count
their share of the supervisor's pages (and every process a share of the libraries other Python processes on the
machine map: compare figures from one run). Private pages are the process's alone.

    python -m benches.memory                       # one process, the embedded default config
    python -m benches.memory --workers 2
    python -m benches.memory --config gateway.yaml --model my-model

Between the idle and the loaded figures, six calls one at a time: the first one's time against the next five's shows
what the gateway loads at a model's first call rather than at start.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benches.load import free_port, wait_for_port
from benches.workers import children

KEY = "gw-memory-bench-key"


def rollup(pid: int) -> dict[str, int]:
    """smaps_rollup's fields in kB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return fields


def show(moment: str, pids: list[int]) -> None:
    for i, pid in enumerate(pids):
        role = "server" if len(pids) == 1 else ("supervisor" if i == 0 else f"worker {i - 1}")
        r = rollup(pid)
        private = r["Private_Clean"] + r["Private_Dirty"]
        print(
            f"| {moment} | {role} | {r['Rss'] / 1024:.0f} | {r['Pss'] / 1024:.0f} | {r['Pss_Anon'] / 1024:.0f} "
            f"| {private / 1024:.0f} |"
        )
    if len(pids) > 1:
        total = sum(rollup(pid)["Pss"] for pid in pids) / 1024
        print(f"| {moment} | all | | {total:.0f} | | |")


def first_calls(port: int, model: str) -> str:
    """Times a fresh gateway's first call against the five after it: the first loads what a model's calls need on
    first use (the token vocabulary of its encoding, connections)."""
    from gateway.client import SyncGatewayClient

    with SyncGatewayClient(f"127.0.0.1:{port}", KEY) as client:
        times = []
        for _ in range(6):
            start = time.perf_counter()
            client.chat(model, "How long does a first call take?", max_tokens=8, timeout=30)
            times.append((time.perf_counter() - start) * 1000)
    later = sorted(times[1:])[2]
    return f"first call {times[0]:.1f} ms, the next five's median {later:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--config", type=Path, help="default: the embedded one")
    parser.add_argument("--model", default="sim-fast", help="what the load calls")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load (unary, c=16, 8 connections)")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "gateway", "serve", "--address", f"127.0.0.1:{port}"]
        # --workers only when asked: the same command then measures a gateway from before the flag existed.
        command += (["--workers", str(args.workers)] if args.workers != 1 else []) + (
            ["--config", str(args.config)] if args.config else []
        )
        log = Path(tmp) / "server.log"
        env = {
            **os.environ,
            "GATEWAY_STATE_DIR": tmp,
            "GATEWAY_BOOTSTRAP_KEY": KEY,
            "GATEWAY_METRICS_ADDR": "127.0.0.1:0",
            "GATEWAY_LOG_LEVEL": "INFO",
        }
        with log.open("wb") as stderr:
            server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for_port(port)
            deadline = time.monotonic() + 30
            while args.workers > 1 and f"{args.workers} workers serving" not in log.read_text():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise TimeoutError(log.read_text()[-2000:])
                time.sleep(0.05)
            time.sleep(3.0)  # start-up settles
            if server.poll() is not None:
                raise RuntimeError(f"the gateway exited:\n{log.read_text()[-2000:]}")
            pids = [server.pid, *children(server.pid)]
            print("| moment | process | RSS MB | PSS MB | anonymous PSS MB | private MB |")
            print("| --- | --- | --- | --- | --- | --- |")
            show("idle", pids)
            first = first_calls(port, args.model)
            show("after 6 calls", pids)
            load = [sys.executable, "-m", "benches.loadgen", "--target", f"127.0.0.1:{port}", "--key", KEY]
            load += ["--model", args.model, "--concurrency", "16", "--connections", "8"]
            load += ["--duration", str(args.duration), "--out", str(Path(tmp) / "load.json")]
            subprocess.run(
                load,
                check=True,
                timeout=args.duration + 60,
            )
            show("after load", pids)
            print(f"\n{first}")
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
