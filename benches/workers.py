"""`gateway serve --workers N`: 1 and 2 workers against the bare forwarder, in one run, with memory per process.

On a 2-core machine the load generator, the upstream and the servers share the cores, so two workers cannot show
their throughput here; what they cost can: the server's CPU time per call (every process of it: the supervisor,
the workers, and redis-server when the state is shared) stays a steady figure under any load. With one core per
worker, capacity is cores / CPU per call, so the projected gain of a second core is 2 x (one worker's CPU per call)
/ (two workers' CPU per call).

Targets, each in its own processes against one zero-latency OpenAI-format upstream: the bare forwarder (the floor
of the stack), the gateway with 1 worker, with 2 workers, and both again with state.redis_url (the bench key's
rate limits then cost two Redis scripts a call, admit and settle), and 2 workers with `limits.mode: lease` (one
script per 20 calls). Rounds alternate the targets so that a noisy moment of the shared
machine falls on all of them; the tables give medians over rounds. Every loop is bounded in time and count.

    python -m benches.workers                  # 3 rounds of 4 s per target, unary c=16 (about 2 minutes)
    python -m benches.workers --rounds 1 --duration 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benches.load import (
    BENCH_ADMIN_KEY,
    BENCH_KEY,
    BENCH_KEY_ENV,
    cpu_seconds,
    free_port,
    gateway_config,
    process,
    wait_for_port,
)


@dataclass
class Target:
    name: str
    address: str
    proc: subprocess.Popen[bytes]
    workers: int = 0
    """0: not a gateway."""
    redis_pid: int | None = None
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    redis_us: list[float] = field(default_factory=list)
    """Per round: redis-server's part of cpu_us."""
    worker_share: list[float] = field(default_factory=list)
    """Per round: the busiest worker's share of the workers' CPU (0.5 = even)."""
    errors: int = 0

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def cpu(self) -> dict[int, float]:
        pids = self.pids() + ([self.redis_pid] if self.redis_pid else [])
        return {pid: cpu_seconds(pid) for pid in pids}


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB: PSS splits each page among the processes sharing it (forked workers share theirs)."""
    rss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    pss = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        if line.startswith("Pss:")
    )
    return rss, pss


@contextlib.contextmanager
def gateway(
    name: str, config: Path, port: int, workers: int, env: dict[str, str], state: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`gateway serve --workers N`, ready once the supervisor says every worker serves."""
    log = state.with_suffix(".log")
    state.mkdir()
    command = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--address", f"127.0.0.1:{port}"]
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env={**os.environ, **env, "GATEWAY_STATE_DIR": str(state)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 30
        while workers > 1 and f"{workers} workers serving" not in log.read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise TimeoutError(f"{name} did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen[bytes] | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def drive(target: Target, args: argparse.Namespace) -> None:
    """One measured run of the load generators against `target`; appends its figures to the target."""
    before = target.cpu()
    per = [args.concurrency // args.processes] * args.processes
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.json" for i in range(args.processes)]
        command = [sys.executable, "-m", "benches.loadgen", "--target", target.address, "--key", BENCH_KEY]
        command += ["--model", "bench", "--mode", args.mode, "--duration", str(args.duration)]
        command += ["--connections", str(args.connections)]
        runs = [
            subprocess.Popen([*command, "--concurrency", str(c), "--out", str(out)])
            for c, out in zip(per, outs, strict=True)
        ]
        for run in runs:
            run.wait(timeout=args.duration + 60)
        results = [orjson.loads(out.read_bytes()) for out in outs]
    after = target.cpu()
    calls = sum(r["calls"][0] for r in results)
    answered = sum(len(r["latency_us"]) for r in results)
    window = max(r["window_s"] for r in results)
    target.rps.append(answered / window)
    target.cpu_us.append(sum(after[p] - before.get(p, 0.0) for p in after) / calls * 1e6)
    if target.redis_pid:
        target.redis_us.append((after[target.redis_pid] - before[target.redis_pid]) / calls * 1e6)
    target.errors += sum(len(r["errors"]) for r in results)
    workers = [p for p in children(target.proc.pid) if p in before]
    if len(workers) > 1:
        used = [after[p] - before[p] for p in workers]
        target.worker_share.append(max(used) / sum(used))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--connections", type=int, default=8, help="gRPC connections per load-generator process")
    parser.add_argument("--mode", choices=["unary", "stream"], default="unary")
    args = parser.parse_args()

    names = ("upstream", "forwarder", "g1", "g2", "redis", "g1r", "g2r", "g2l")
    ports = {name: free_port() for name in names}
    upstream_url = f"http://127.0.0.1:{ports['upstream']}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        base = gateway_config(upstream_url, upstream_url)
        config = Path(tmp) / "bench.yaml"
        config.write_text(base)
        shared = Path(tmp) / "shared.yaml"
        shared.write_text(base + f"state: {{redis_url: 'redis://127.0.0.1:{ports['redis']}/0'}}\n")
        leased = Path(tmp) / "leased.yaml"
        leased.write_text(shared.read_text() + "limits: {mode: lease}\n")
        env = {
            "GATEWAY_BOOTSTRAP_KEY": BENCH_ADMIN_KEY,
            BENCH_KEY_ENV: BENCH_KEY,
            "BENCH_UPSTREAM_KEY": "sk-bench",
            "GATEWAY_LOG_LEVEL": "INFO",  # the supervisor's "N workers serving" line says when to start
            "GATEWAY_METRICS_ADDR": "127.0.0.1:0",
        }
        state = Path(tmp)
        with contextlib.ExitStack() as stack:
            enter = stack.enter_context
            enter(process("-m", "benches.upstream", "--port", str(ports["upstream"]), port=ports["upstream"]))
            forwarder = enter(
                process(
                    *("-m", "benches.reference_servers", "forwarder", "--port", str(ports["forwarder"])),
                    *("--upstream", upstream_url),
                    port=ports["forwarder"],
                )
            )
            redis = enter(redis_server(ports["redis"]))
            targets = [
                Target("bare forwarder", f"127.0.0.1:{ports['forwarder']}", forwarder),
                Target(
                    "gateway, 1 worker",
                    f"127.0.0.1:{ports['g1']}",
                    enter(gateway("g1", config, ports["g1"], 1, env, state / "g1")),
                    1,
                ),
                Target(
                    "gateway, 2 workers",
                    f"127.0.0.1:{ports['g2']}",
                    enter(gateway("g2", config, ports["g2"], 2, env, state / "g2")),
                    2,
                ),
            ]
            if redis is not None:
                targets += [
                    Target(
                        "gateway, 1 worker + Redis",
                        f"127.0.0.1:{ports['g1r']}",
                        enter(gateway("g1r", shared, ports["g1r"], 1, env, state / "g1r")),
                        1,
                        redis.pid,
                    ),
                    Target(
                        "gateway, 2 workers + Redis",
                        f"127.0.0.1:{ports['g2r']}",
                        enter(gateway("g2r", shared, ports["g2r"], 2, env, state / "g2r")),
                        2,
                        redis.pid,
                    ),
                    Target(
                        "gateway, 2 workers + Redis, lease mode",
                        f"127.0.0.1:{ports['g2l']}",
                        enter(gateway("g2l", leased, ports["g2l"], 2, env, state / "g2l")),
                        2,
                        redis.pid,
                    ),
                ]
            time.sleep(2.0)  # let start-up settle before the idle memory is read
            idle = {t.name: [memory_kb(p) for p in t.pids()] for t in targets}
            for round_ in range(args.rounds):
                order = targets[round_ % len(targets) :] + targets[: round_ % len(targets)]
                for target in order:
                    drive(target, args)
            loaded = {t.name: [memory_kb(p) for p in t.pids()] for t in targets}
    print_results(targets, args)
    print()
    print_memory(targets, idle, loaded)


def print_results(targets: list[Target], args: argparse.Namespace) -> None:
    """Ratios are of medians over rounds; the projection is 2 x one worker's CPU per call / two workers'."""
    forwarder, one = targets[0], targets[1]
    one_shared = next((t for t in targets if t.workers == 1 and t.redis_pid), None)
    print(
        f"{args.mode}, c={args.concurrency}, {args.processes} load generators x {args.connections} connections, "
        f"{args.rounds} rounds of {args.duration:g} s, medians"
    )
    print()
    print(
        "| target | req/s | server CPU µs/call (redis-server's) | req/s / forwarder's | CPU/call / forwarder's "
        "| CPU/call / 1 worker's | CPU/call / 1 worker's with the same state | projected capacity, 2 cores / 1 "
        "| busiest worker's CPU share | errors |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    fwd_rps, fwd_cpu, one_cpu = (statistics.median(x) for x in (forwarder.rps, forwarder.cpu_us, one.cpu_us))
    for target in targets:
        rps, cpu = statistics.median(target.rps), statistics.median(target.cpu_us)
        if target.workers:
            same = one_shared if target.redis_pid and one_shared is not None else one
            ratio = cpu / statistics.median(same.cpu_us)
            vs_one, vs_same = f"{cpu / one_cpu:.3f}", f"{ratio:.3f}"
            projected = f"{2 / ratio:.2f}" if target.workers == 2 else "-"
        else:
            vs_one = vs_same = projected = "-"
        share = f"{statistics.median(target.worker_share):.2f}" if target.worker_share else "-"
        redis = f" ({statistics.median(target.redis_us):.0f})" if target.redis_us else ""
        print(
            f"| {target.name} | {rps:,.0f} | {cpu:.0f}{redis} | {rps / fwd_rps:.2f} | {cpu / fwd_cpu:.2f} | {vs_one} "
            f"| {vs_same} | {projected} | {share} | {target.errors} |"
        )
    print()
    print("per round, server CPU µs/call:")
    for target in targets:
        print(f"  {target.name}: {', '.join(f'{c:.0f}' for c in target.cpu_us)}")


def print_memory(
    targets: list[Target], idle: dict[str, list[tuple[int, int]]], loaded: dict[str, list[tuple[int, int]]]
) -> None:
    print("| target | process | idle RSS MB | idle PSS MB | after load RSS MB | after load PSS MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for target in targets:
        roles = (
            ["server"]
            if len(idle[target.name]) == 1
            else ["supervisor"] + [f"worker {i}" for i in range(len(idle[target.name]) - 1)]
        )
        for role, (rss, pss), (rss2, pss2) in zip(roles, idle[target.name], loaded[target.name], strict=False):
            mb = [f"{kb / 1024:.0f}" for kb in (rss, pss, rss2, pss2)]
            print(f"| {target.name} | {role} | {' | '.join(mb)} |")
        if len(roles) > 1:
            idle_pss = sum(p for _, p in idle[target.name]) / 1024
            loaded_pss = sum(p for _, p in loaded[target.name]) / 1024
            print(f"| {target.name} | all (PSS) | | {idle_pss:.0f} | | {loaded_pss:.0f} |")


if __name__ == "__main__":
    main()
