"""Where quick calls wait while a burst of long streams opens: the server's event-loop lag beside the quick calls'
latency, for the gateway and the bare forwarder, each in a fresh process of its own.

The server runs in this process with a watcher task that sleeps 5 ms at a time and records how late it wakes (the
lag any callback meets in the loop's queue); client processes (benches/burst_client.py) open `--streams` streams
over one second while a prober makes 100 quick unary calls a second. A quick call that is slow while the loop lag
stays low waited elsewhere: in gRPC's queue of calls the server has not taken yet, or in the client. Bounded: one
burst per target, about 20 s each.

    python -m benches.stream_lag --streams 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import uvloop

from benches.load import free_port, wait_for_port
from benches.stream_memory import forwarder_server, in_fresh_process, in_process_gateway

TARGETS = ("forwarder", "gateway")
TICK_S = 0.005
IDLE_S = 3.0
READY_WAIT_S = 60.0
UPSTREAM = (sys.executable, "-m", "benches.upstream")
ANSWER_S = 10.0


@contextlib.contextmanager
def upstreams() -> Iterator[tuple[str, str]]:
    """A slow upstream (10 words a second apart) and a quick one."""
    ports = free_port(), free_port()
    procs = [
        subprocess.Popen([*UPSTREAM, "--port", str(ports[0]), "--chunks", "10", "--interval", "1"]),
        subprocess.Popen([*UPSTREAM, "--port", str(ports[1])]),
    ]
    try:
        for port in ports:
            wait_for_port(port)
        yield f"http://127.0.0.1:{ports[0]}/v1", f"http://127.0.0.1:{ports[1]}/v1"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


async def watch(lags: list[tuple[float, float]], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(TICK_S)
        lags.append((time.time(), loop.time() - before - TICK_S))


async def burst(target: str, streams: int) -> dict[str, object]:
    lags: list[tuple[float, float]] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(lags, stop))
    with tempfile.TemporaryDirectory() as tmp:
        client = [sys.executable, "-m", "benches.burst_client"]
        probe_out, streams_out = Path(tmp) / "probe.json", Path(tmp) / "streams.json"
        ready = [Path(tmp) / "ready-probe", Path(tmp) / "ready-streams"]
        go, stop_file = Path(tmp) / "go", Path(tmp) / "stop"
        probe = await asyncio.create_subprocess_exec(
            *client, "probe", "--target", target, "--model", "quick", "--rate", "100", "--ready-file", str(ready[0]),
            "--until", str(time.time() + READY_WAIT_S + 120), "--stop-file", str(stop_file), "--out", str(probe_out),
        )  # fmt: skip
        opener = await asyncio.create_subprocess_exec(
            *client, "streams", "--target", target, "--model", "slow", "--count", str(streams), "--spread", "1",
            "--channels", "4", "--ready-file", str(ready[1]), "--go-file", str(go), "--out", str(streams_out),
        )  # fmt: skip
        # The idle window starts once both clients have started up (as in benches/stream_burst.py).
        for _ in range(int(READY_WAIT_S / 0.05)):
            if all(path.exists() for path in ready):
                break
            await asyncio.sleep(0.05)
        start = time.time() + 0.5
        burst_at = start + IDLE_S
        go.write_text(repr(burst_at))
        await opener.wait()
        stop_file.touch()
        await probe.wait()
        stop.set()
        await watcher
        calls = orjson.loads(await asyncio.to_thread(probe_out.read_bytes))["calls"]
        outcomes = orjson.loads(await asyncio.to_thread(streams_out.read_bytes))["streams"]
    opened = max(s["start"] + (s["first_chunk_s"] or 0) for s in outcomes)
    windows = {"idle": (start, burst_at), "opening": (burst_at, opened), "streaming": (opened, opened + ANSWER_S)}
    result: dict[str, object] = {"lost": sum(1 for s in outcomes if s["code"] != "OK"), "opening_s": opened - burst_at}
    for name, (low, high) in windows.items():
        lag = sorted(v for at, v in lags if low <= at < high)
        quick = sorted(v / 1e6 for at, v, code in calls if low <= at < high and code == "OK")
        result[name] = {
            "lag_p50_ms": 1000 * lag[len(lag) // 2] if lag else None,
            "lag_p99_ms": 1000 * lag[int(len(lag) * 0.99)] if lag else None,
            "lag_max_ms": 1000 * lag[-1] if lag else None,
            "quick_p50_ms": 1000 * quick[len(quick) // 2] if quick else None,
            "quick_p99_ms": 1000 * quick[int(len(quick) * 0.99)] if quick else None,
        }
    return result


async def measure(target: str, streams: int) -> dict[str, object]:
    with upstreams() as (slow_url, quick_url):
        server = (
            forwarder_server(quick_url, slow_url) if target == "forwarder" else in_process_gateway(slow_url, quick_url)
        )
        async with server as address:
            return await burst(address, streams)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--target", choices=TARGETS, help="measure one target in this process (internal)")
    args = parser.parse_args()
    if args.target:
        print(orjson.dumps(uvloop.run(measure(args.target, args.streams))).decode())
        return
    print(f"| {args.streams:,} streams | window | loop lag p50 / p99 / max, ms | quick call p50 / p99, ms |")
    print("| --- | --- | --- | --- |")
    for target in args.targets:
        result = in_fresh_process("benches.stream_lag", "--target", target, args.streams, timeout_s=180)
        for window in ("idle", "opening", "streaming"):
            w = result[window]
            print(
                f"| {target} (lost {result['lost']}) | {window}"
                + (f" ({result['opening_s']:.1f} s)" if window == "opening" else "")
                + f" | {w['lag_p50_ms']:.1f} / {w['lag_p99_ms']:.1f} / {w['lag_max_ms']:.1f} "
                f"| {w['quick_p50_ms']:.1f} / {w['quick_p99_ms']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
