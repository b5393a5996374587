"""Instructions the gateway's Chat handler executes per call, in-process (no gRPC), counted by callgrind: a measure
that a loaded machine does not move, for choosing between two versions of the call path.

The handler of `benches.pipeline_cpu` (the same config, with the periodic key sync pushed out of the run) is driven
at c=16 for `--few` calls and for `--many` calls, each in its own process under `valgrind --tool=callgrind` (all
threads, user space); the difference of the two totals divided by the difference of the calls is the cost of a
call, with start-up, warm-up and shutdown cancelled out. Clock-driven background work (the audit log's 10 ms
batches) counts in proportion to valgrind's slowdown, alike in two versions measured the same way.

    python -m benches.handler_instructions                       # this tree
    python -m benches.handler_instructions --python-path DIR     # another tree's python/ (e.g. `git archive main`)
    python -m benches.handler_instructions --way-in              # the way in only, without noise
    python -m benches.handler_instructions --traced              # tracing every call over OTLP/gRPC

`--way-in` counts only the way in of a call, repeated on one call captured after warm-up, with the upstream's answer
handed over in-process (no socket, so the event loop never runs between two repeats and no clock-driven work counts):
the request's conversion, the route stage, the limits' admission and release, and the executor's attempt with the
provider adapter's request build and answer parse. Clock-driven work while each process starts and stops still
varies between runs (~10,000 instructions a repeat): compare two trees side by side in one session.

`--traced` counts the gateway of `benches.pipeline_cpu --traced`: every call traced and exported over OTLP/gRPC to a
local receiver (benches.otlp_receiver, a process of its own, so not counted); the export thread counts, as all do.

Bounded: two processes, `--few` + `--many` calls in all (960 + 160 by default: ~2 minutes each under valgrind).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import uvloop

from benches.pipeline_cpu import REQUEST, bench_gateway, drive, otlp_receiver, traced_config
from benches.upstream import _ANSWER
from gateway.pipeline.call import Call
from gateway.providers.base import UpstreamCall
from gateway.providers.http import HttpProvider, UpstreamRequest
from gateway.server.app import Gateway

_NO_SYNC = "state: {sync_interval_s: 3600}"  # the periodic key sync would count as per-call work


async def run_calls(calls: int, *, way_in: bool, otlp_port: int | None) -> None:
    extra = _NO_SYNC if otlp_port is None else f"{_NO_SYNC}\n{traced_config(otlp_port)}"
    async with bench_gateway(extra) as (gateway, _):
        if way_in:
            await repeat_way_in(gateway, calls)
        else:
            await drive(gateway.servicer.Chat, calls)
        await gateway.audit.flush()
        await gateway.stop(1.0)  # exports what tracing queued


async def repeat_way_in(gateway: Gateway, calls: int) -> None:
    """The way in of one Chat call, `calls` times, on a call captured at its route stage after warm-up."""
    servicer = gateway.servicer
    pipeline = servicer._pipeline
    stages = {type(stage).__name__: stage for stage in pipeline._chat.stages}
    route, limits = stages["PlanRoute"], stages["AdmitLimits"]
    captured: list[Call[Any]] = []
    plan_route = route.enter

    def capture(call: Call[Any]) -> object:
        captured.append(call)
        return plan_route(call)

    route.enter = capture  # type: ignore[method-assign, assignment]
    await drive(servicer.Chat, 32)
    del route.enter
    call = captured[-1]
    assert call.plan is not None
    provider = call.plan.candidates[0].provider
    assert isinstance(provider, HttpProvider)
    answer = orjson.loads(_ANSWER)

    async def upstream(request: UpstreamRequest, upstream_call: UpstreamCall) -> tuple[Any, dict[str, str]]:
        orjson.dumps(request.body)  # what _send does before the socket
        return answer, {}

    provider._whole = upstream  # type: ignore[method-assign, assignment]
    for _ in range(calls):
        servicer.chat_request(REQUEST)
        route.enter(call)
        limits.enter(call)
        await pipeline._serving.execution(call, batch=False).unary()
        limits.exit(call, None)


def count(calls: int, python_path: str | None, *, way_in: bool, otlp_port: int | None) -> int:
    """The instructions one process executes driving `calls` calls, from callgrind's totals."""
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (python_path, env.get("PYTHONPATH"))))
    with tempfile.TemporaryDirectory() as out:
        dump = Path(out) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dump}", sys.executable]
            + ["-m", "benches.handler_instructions", "--drive", str(calls)]
            + (["--way-in"] if way_in else [])
            + ([] if otlp_port is None else ["--otlp-port", str(otlp_port)]),
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
    parser.add_argument("--way-in", action="store_true", help="count the way in of a call only (see above)")
    parser.add_argument("--traced", action="store_true", help="trace every call over OTLP/gRPC (see above)")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)  # the child under valgrind
    parser.add_argument("--otlp-port", type=int, help=argparse.SUPPRESS)  # the child's receiver, when traced
    args = parser.parse_args()
    if args.drive is not None:
        uvloop.run(run_calls(args.drive, way_in=args.way_in, otlp_port=args.otlp_port))
        return
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(otlp_receiver()) if args.traced else None
        few = count(args.few, args.python_path, way_in=args.way_in, otlp_port=port)
        many = count(args.many, args.python_path, way_in=args.way_in, otlp_port=port)
    print(f"instructions a call: {(many - few) / (args.many - args.few):,.0f}")


if __name__ == "__main__":
    main()
