"""Instructions the gateway's Chat handler executes per call, in-process (no gRPC), counted by callgrind: a measure
that a loaded machine does not move, for choosing between two versions of the call path.

The handler of `benches.pipeline_cpu` (the same config, with the periodic key sync pushed out of the run) is driven
at c=16 for `--few` calls and for `--many` calls, each in its own process under `valgrind --tool=callgrind` (all
threads, user space); the difference of the two totals divided by the difference of the calls is the cost of a
call, with start-up, warm-up and shutdown cancelled out. Clock-driven background work (the audit log's 10 ms
batches) counts in proportion to valgrind's slowdown, alike in two versions measured the same way.

    python -m benches.handler_instructions                       # this tree
    python -m benches.handler_instructions --python-path DIR     # another tree's python/ (e.g. `git archive main`)

Bounded: two processes, `--few` + `--many` calls in all (960 + 160 by default: ~2 minutes each under valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import uvloop

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, free_port, gateway_config, process
from benches.pipeline_cpu import drive
from gateway.config import load_config
from gateway.server.app import build_gateway

_NO_SYNC = "state: {sync_interval_s: 3600}\n"  # the periodic key sync would count as per-call work


async def run_calls(calls: int) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory() as state, process("-m", "benches.upstream", "--port", str(port), port=port):
        os.environ["GATEWAY_BOOTSTRAP_KEY"] = BENCH_ADMIN_KEY
        os.environ[BENCH_KEY_ENV] = BENCH_KEY
        os.environ["BENCH_UPSTREAM_KEY"] = "sk-bench"
        config_file = Path(state) / "bench.yaml"
        config_file.write_text(gateway_config(url, url) + _NO_SYNC)
        gateway = await build_gateway(
            load_config(str(config_file)), address="127.0.0.1:0", state_dir=Path(state), metrics_address="127.0.0.1:0"
        )
        await drive(gateway.servicer.Chat, calls)
        await gateway.audit.flush()
        await gateway.stop(1.0)


def count(calls: int, python_path: str | None) -> int:
    """The instructions one process executes driving `calls` calls, from callgrind's totals."""
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (python_path, env.get("PYTHONPATH"))))
    with tempfile.TemporaryDirectory() as out:
        dump = Path(out) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable]
            + ["-m", "benches.handler_instructions", "--drive", str(calls)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        found = re.search(r"^(?:summary|totals): (\d+)", dump.read_text(errors="replace"), re.MULTILINE)
    assert found is not None, "callgrind wrote no totals"
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--few", type=int, default=160)
    parser.add_argument("--many", type=int, default=960)
    parser.add_argument("--python-path", help="a python/ directory to import gateway from instead of this tree's")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the child under valgrind
    args = parser.parse_args()
    if args.drive is not None:
        uvloop.run(run_calls(args.drive))
        return
    few, many = count(args.few, args.python_path), count(args.many, args.python_path)
    print(f"instructions a call: {(many - few) / (args.many - args.few):,.0f}")


if __name__ == "__main__":
    main()
