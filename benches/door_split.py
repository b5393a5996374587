"""Where a call's CPU goes, door by door: the bare forwarder, the gateway's gRPC door and its HTTP door.

One gateway process serves both doors, so the pipeline, its threads and its state are the same and only the
protocol differs; the forwarder is the gRPC reference. Rounds alternate the three targets under the same Python load
generator (benches/loadgen.py, two processes of 8). For each point the server's CPU per call is split by thread, from
/proc: the event loop (the main thread), gRPC core's own threads (`event_engine`, its timer), and the rest (gRPC's
completion-queue poller, the ledger writer, aiosqlite's worker), each as user + system, with the context switches per
call. With `--perf`, `perf record` samples the server meanwhile and splits its CPU per call by library (libpython,
the kernel, gRPC's cygrpc, protobuf...), which tells Python work from transport work. Medians over rounds.

    python -m benches.door_split                 # 3 rounds of 6 s per target (about 2 minutes)
    python -m benches.door_split --perf          # and the split by library (needs `perf` and the right to use it)
    python -m benches.door_split --config-extra 'audit: {flush_interval_ms: 50}'
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

from benches.load import BENCH_KEY, free_port, gateway_config, gateway_env, process

WARMUP_S = 1.0
PERF_HZ = 1999
MIN_LIBRARY_US = 5.0
"""Libraries under this many µs a call in every target are summed into one row."""


def thread_times(pid: int) -> dict[str, tuple[float, float, int]]:
    """Per thread group: user seconds, system seconds and context switches so far."""
    tick = os.sysconf("SC_CLK_TCK")
    groups: dict[str, tuple[float, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        base = Path(f"/proc/{pid}/task/{tid}")
        try:
            fields = (base / "stat").read_text().rsplit(")", 1)[1].split()
            comm = (base / "comm").read_text().strip()
            status = (base / "status").read_text().splitlines()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        switches = sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)
        group = "loop" if tid == str(pid) else "grpc core" if comm in ("event_engine", "grpc_global_tim") else "other"
        user, system, count = groups.get(group, (0.0, 0.0, 0))
        groups[group] = (user + int(fields[11]) / tick, system + int(fields[12]) / tick, count + switches)
    return groups


def perf_split(data: Path) -> dict[str, int]:
    """Samples per library (the shared object each sample's instruction was in)."""
    out = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "ip,dso", "-G"], capture_output=True, text=True, check=True
    ).stdout
    counts: collections.Counter[str] = collections.Counter()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            name = parts[-1].strip("()").rsplit("/", 1)[-1]
            counts["kernel" if name.startswith("[kernel") else name.split(".")[0].split("-")[0]] += 1
    return counts


def measure(target: str, pid: int, seconds: float, use_perf: bool, tmp: Path) -> dict[str, float]:
    """One point: the load for `seconds`, the server's threads sampled over the middle of it."""
    command = [sys.executable, "-m", "benches.loadgen", "--target", target, "--mode", "unary", "--key", BENCH_KEY]
    command += ["--model", "bench", "--concurrency", "8", "--duration", str(seconds), "--warmup", str(WARMUP_S)]
    outs = [tmp / f"load{i}.json" for i in range(2)]
    loads = [subprocess.Popen([*command, "--out", str(out)]) for out in outs]
    window = seconds - 1.0
    try:
        subprocess.run(["sleep", str(WARMUP_S + 0.5)], check=True)
        before = thread_times(pid)
        recorder = ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ), "-p", str(pid)]
        sampler = [*recorder, "-o", str(tmp / "perf.data"), "--", "sleep", str(window)] if use_perf else None
        subprocess.run(sampler or ["sleep", str(window)], check=True, capture_output=True)
        after = thread_times(pid)
    finally:
        for load in loads:
            load.wait(timeout=seconds + 60)
    results = [orjson.loads(out.read_bytes()) for out in outs]
    rps = sum(len(r["latency_us"]) for r in results) / max(r["window_s"] for r in results)
    calls = rps * window
    point = {"req/s": rps}
    for group, (user, system, switches) in after.items():
        user0, system0, switches0 = before.get(group, (0.0, 0.0, 0))
        point[f"{group} µs"] = (user - user0 + system - system0) / calls * 1e6
        point[f"{group} sys µs"] = (system - system0) / calls * 1e6
        point[f"{group} switches"] = (switches - switches0) / calls
    point["all threads µs"] = sum(point[f"{group} µs"] for group in after)
    if use_perf:
        for library, samples in perf_split(tmp / "perf.data").items():
            point[f"lib {library} µs"] = samples / PERF_HZ / calls * 1e6
    return point


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="load per point")
    parser.add_argument("--perf", action="store_true", help="also split the CPU by library with perf record")
    parser.add_argument("--config-extra", default="", help="YAML appended to the gateway's bench config")
    args = parser.parse_args()
    ports = {name: free_port() for name in ("upstream", "forwarder", "gateway", "http")}
    upstream = f"http://127.0.0.1:{ports['upstream']}/v1"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        config = tmp / "bench.yaml"
        config.write_text(gateway_config(upstream, upstream) + args.config_extra + "\n")
        env = gateway_env(tmp_dir)
        gateway = ("-m", "gateway", "serve", "--config", str(config), "--address", f"127.0.0.1:{ports['gateway']}")
        with (
            process("-m", "benches.upstream", "--port", str(ports["upstream"]), port=ports["upstream"]),
            process(
                *("-m", "benches.reference_servers", "forwarder", "--port", str(ports["forwarder"])),
                *("--upstream", upstream),
                port=ports["forwarder"],
            ) as forwarder,
            process(*gateway, "--http-address", f"127.0.0.1:{ports['http']}", port=ports["gateway"], env=env) as gw,
        ):
            targets = [
                ("bare forwarder", f"127.0.0.1:{ports['forwarder']}", forwarder.pid),
                ("gateway, gRPC door", f"127.0.0.1:{ports['gateway']}", gw.pid),
                ("gateway, HTTP door", f"http://127.0.0.1:{ports['http']}/v1", gw.pid),
            ]
            points: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in targets}
            for _ in range(args.rounds):
                for name, target, pid in targets:
                    points[name].append(measure(target, pid, args.seconds, args.perf, tmp))
    rows = sorted({key for runs in points.values() for point in runs for key in point}, key=_row_order)
    print("| per call, c=16 unary (medians) | " + " | ".join(points) + " |")
    print("| --- |" + " --- |" * len(points))
    rest = [0.0] * len(points)
    for row in rows:
        cells = [statistics.median(p.get(row, 0.0) for p in runs) for runs in points.values()]
        if row.startswith("lib ") and max(cells) < MIN_LIBRARY_US:
            rest = [r + c for r, c in zip(rest, cells, strict=True)]
            continue
        digits = 2 if row.endswith("switches") else 0
        print(f"| {row} | " + " | ".join(f"{cell:,.{digits}f}" for cell in cells) + " |")
    if args.perf:
        print("| lib (the rest) µs | " + " | ".join(f"{cell:,.0f}" for cell in rest) + " |")


def _row_order(row: str) -> tuple[int, str]:
    order = ("req/s", "all threads µs", "loop µs", "loop sys µs", "loop switches", "grpc core", "other", "lib ")
    return next((i for i, prefix in enumerate(order) if row.startswith(prefix)), len(order)), row


if __name__ == "__main__":
    main()
