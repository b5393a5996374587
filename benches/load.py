"""The bounded load benchmark: the gateway against its references, in one run.

Starts a zero-latency OpenAI-format upstream, a gRPC echo server (the load generator's ceiling), a bare grpc.aio +
aiohttp forwarder (the floor of the stack) and the gateway (full pipeline, OpenAI adapter), then drives each at
concurrency 1, 16 and 64, unary and streaming, with several load-generator processes. Every loop is bounded in time
and count; everything listens on 127.0.0.1 only.

    python -m benches.load                     # the full table (about 2 minutes)
    python -m benches.load --quick             # c=16 unary only
    python -m benches.load --front-doors       # the OpenAI-compatible HTTP door against gRPC (about 30 s)
    python -m benches.load --aims --rounds 5   # issue 15's aims: forwarder, gateway, traced gateway alternating,
                                               # five rounds of every mode and c, medians (about 7 minutes)

The gateway serves its OpenAI-compatible HTTP front door too (--http-address); the front-door table drives the bare
forwarder, the gateway's gRPC door and its HTTP door with the same Python load generator (benches/loadgen.py), so the
two doors differ only in their protocol, not in the client that measures them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import orjson
from llmgateway.v1 import gateway_pb2_grpc

from benches.loadgen import bench_request

BENCH_KEY = "bench-key"
"""The key the load generators call with: a service's key with rate limits, as the issue's measurement asks (limits
high enough never to refuse, so every call pays for the check)."""
BENCH_KEY_ENV = "BENCH_SERVICE_KEY"
BENCH_ADMIN_KEY = "bench-admin-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


@contextlib.contextmanager
def process(*args: str, port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server process of the benchmark, stopped on exit; its stderr is kept in a file to explain a failed start."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            try:
                wait_for_port(port)
            except TimeoutError:
                stderr.seek(0)
                raise TimeoutError(f"{' '.join(args)} did not start:\n{stderr.read().decode()[-2000:]}") from None
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def gateway_env(state_dir: str) -> dict[str, str]:
    """A benchmarked gateway's environment: the bench keys, its state folder, errors-only logs, and metrics served
    (on an ephemeral port), as a deployment would."""
    return {
        "GATEWAY_BOOTSTRAP_KEY": BENCH_ADMIN_KEY,
        BENCH_KEY_ENV: BENCH_KEY,
        "GATEWAY_STATE_DIR": state_dir,
        "BENCH_UPSTREAM_KEY": "sk-bench",
        "GATEWAY_LOG_LEVEL": "ERROR",
        "GATEWAY_METRICS_ADDR": "127.0.0.1:0",
    }


def gateway_config(upstream_url: str, flaky_url: str) -> str:
    return f"""
providers:
  - name: bench-upstream
    type: openai
    base_url: {upstream_url}
    api_key_env: BENCH_UPSTREAM_KEY
  - name: flaky-upstream
    type: openai
    base_url: {flaky_url}
    api_key_env: BENCH_UPSTREAM_KEY
models:
  - name: bench
    provider: bench-upstream
    upstream_model: gpt-4o-mini
    input_cost_per_mtok: 0.15
    output_cost_per_mtok: 0.60
  - name: flaky
    provider: flaky-upstream
    upstream_model: gpt-4o-mini
  # The same upstream behind the response cache: loadgen repeats one prompt, so after the first call every call hits.
  - name: bench-exact
    provider: bench-upstream
    upstream_model: gpt-4o-mini
    cache: {{exact: true, ttl_s: 3600}}
  - name: bench-semantic
    provider: bench-upstream
    upstream_model: gpt-4o-mini
    cache: {{exact: false, semantic: true, ttl_s: 3600}}
keys:
  - name: bench-service
    key_env: {BENCH_KEY_ENV}
    team: bench
    rpm: 100000000
    tpm: 100000000000
    max_concurrent: 100000
# The breaker would take the flaky target out of rotation; the scenario measures retries, so it must stay in.
circuit_breaker: {{consecutive_failures: 1000, error_rate: 1.0, min_calls: 1000}}
routes:
  - name: failover
    strategy: fallback
    targets: [{{model: flaky}}, {{model: bench}}]
    retries: {{max_attempts: 2, backoff_ms: 0}}
"""


@dataclass
class Point:
    target: str
    mode: str
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    ttfc_p50_ms: float | None
    errors: int
    success: float
    cpu_us_per_call: float


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


RUST_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "rust" / "target" / "release" / "gateway-client"
"""The compiled load generator (`gateway-client load`): one thread, so it leaves the cores to the servers."""


def rust_client() -> Path:
    """The compiled client, built (release) on first use."""
    if not RUST_CLIENT.exists():
        subprocess.run(
            [
                "cargo",
                "build",
                "--release",
                "--locked",
                "--quiet",
                "--manifest-path",
                str(RUST_CLIENT.parents[2] / "Cargo.toml"),
            ],
            check=True,
        )
    return RUST_CLIENT


def prime(target: str, model: str) -> None:
    """One call before a cache's point is measured: it stores the entry the point's calls hit, and on the semantic
    cache loads the embedding model, which takes seconds on a busy machine and would otherwise eat the window."""
    with grpc.insecure_channel(target) as channel:
        gateway_pb2_grpc.GatewayStub(channel).Chat(
            bench_request(model),
            metadata=(("authorization", f"Bearer {BENCH_KEY}"),),
            timeout=60,
        )


def drive(
    name: str,
    target: str,
    model: str,
    mode: str,
    concurrency: int,
    processes: int,
    duration: float,
    server_pid: int,
    client: str = "rust",
) -> Point:
    """Drives one target; besides throughput and latency it measures the server's CPU time per call, which holds
    steadier than throughput on a noisy machine. gRPC targets are driven by the compiled client unless `client` is
    `python` (benches/loadgen.py, several processes); the direct HTTP upstream always by the Python one."""
    cpu_before = cpu_seconds(server_pid)
    compiled = client == "rust" and not target.startswith("http")
    procs = 1 if compiled else max(1, min(processes, concurrency))
    per = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.json" for i in range(procs)]
        if compiled:
            command = [str(rust_client()), "--address", f"http://{target}", "--timeout", "10", "load"]
            command += ["--model", model, "--mode", mode, "--duration", str(duration)]
            with outs[0].open("wb") as out:
                subprocess.run(
                    [*command, "--concurrency", str(concurrency)],
                    env={**os.environ, "GATEWAY_API_KEY": BENCH_KEY},
                    stdout=out,
                    check=True,
                    timeout=duration + 60,
                )
        else:
            command = [sys.executable, "-m", "benches.loadgen", "--target", target, "--mode", mode, "--key", BENCH_KEY]
            command += ["--model", model]
            runs = [
                subprocess.Popen([*command, "--concurrency", str(c), "--duration", str(duration), "--out", str(out)])
                for c, out in zip(per, outs, strict=True)
            ]
            for run in runs:
                run.wait(timeout=duration + 60)
        results = [orjson.loads(out.read_bytes()) for out in outs]
    cpu = cpu_seconds(server_pid) - cpu_before
    calls = sum(r["calls"][0] for r in results)
    latencies = sorted(x for r in results for x in r["latency_us"])
    errors = sum(len(r["errors"]) for r in results)
    ttfc = sorted(x for r in results for x in r["ttfc_us"])
    window = max(r["window_s"] for r in results)
    if not latencies:
        raise RuntimeError(f"{name}: no call completed ({sum(len(r['errors']) for r in results)} errors)")
    return Point(
        target=name,
        mode=mode,
        concurrency=concurrency,
        rps=len(latencies) / window,
        p50_ms=statistics.median(latencies) / 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] / 1000,
        ttfc_p50_ms=statistics.median(ttfc) / 1000 if ttfc else None,
        errors=errors,
        success=len(latencies) / (len(latencies) + errors),
        cpu_us_per_call=cpu / calls * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per point")
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--quick", action="store_true", help="c=16 unary only")
    parser.add_argument("--cache-only", action="store_true", help="only the response cache's points")
    parser.add_argument("--front-doors", action="store_true", help="only the HTTP front door against gRPC")
    parser.add_argument(
        "--client", choices=["rust", "python"], default="rust", help="the load generator for gRPC targets"
    )
    parser.add_argument(
        "--aims", action="store_true", help="only the bare forwarder, the gateway and the traced gateway (no doors)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of the main table, targets alternating; medians reported"
    )
    args = parser.parse_args()
    concurrencies = [16] if args.quick else [1, 16, 64]
    modes = ["unary"] if args.quick else ["unary", "stream"]

    names = (
        "upstream",
        "flaky",
        "echo",
        "forwarder",
        "flaky-forwarder",
        "gateway",
        "gateway-http",
        "gateway-unaudited",
        "otlp",
        "gateway-traced",
    )
    ports = {name: free_port() for name in names}
    upstream_url = f"http://127.0.0.1:{ports['upstream']}/v1"
    flaky_url = f"http://127.0.0.1:{ports['flaky']}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(gateway_config(upstream_url, flaky_url))
        unaudited_config = Path(tmp) / "unaudited.yaml"
        unaudited_config.write_text(gateway_config(upstream_url, flaky_url) + "audit: {enabled: false}\n")
        unaudited_state = Path(tmp) / "unaudited"
        traced_state = Path(tmp) / "traced"
        env = gateway_env(tmp)  # the traced gateway below adds tracing
        forwarder = ("-m", "benches.reference_servers", "forwarder", "--port")
        gateway_address = f"127.0.0.1:{ports['gateway']}"
        http_url = f"http://127.0.0.1:{ports['gateway-http']}/v1"
        gateway_command = (
            *("-m", "gateway", "serve", "--config", str(config), "--address", gateway_address),
            *("--http-address", f"127.0.0.1:{ports['gateway-http']}"),
        )
        traced_address = f"127.0.0.1:{ports['gateway-traced']}"
        traced_command = ("-m", "gateway", "serve", "--config", str(config), "--address", traced_address)
        traced_env = {
            **env,
            "GATEWAY_STATE_DIR": str(traced_state),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{ports['otlp']}",
            "OTEL_TRACES_SAMPLER": "always_on",
        }
        unaudited_address = f"127.0.0.1:{ports['gateway-unaudited']}"
        unaudited_command = (
            *("-m", "gateway", "serve", "--config", str(unaudited_config), "--address", unaudited_address),
        )
        with (
            process("-m", "benches.upstream", "--port", str(ports["upstream"]), port=ports["upstream"]) as upstream,
            process("-m", "benches.upstream", "--port", str(ports["flaky"]), "--fail-rate", "0.3", port=ports["flaky"]),
            process(
                "-m", "benches.reference_servers", "echo", "--port", str(ports["echo"]), port=ports["echo"]
            ) as echo,
            process(*forwarder, str(ports["forwarder"]), "--upstream", upstream_url, port=ports["forwarder"]) as bare,
            process(
                *forwarder, str(ports["flaky-forwarder"]), "--upstream", flaky_url, port=ports["flaky-forwarder"]
            ) as flaky_bare,
            process(*gateway_command, port=ports["gateway"], env=env) as gateway,
            process(
                *unaudited_command,
                port=ports["gateway-unaudited"],
                env={**env, "GATEWAY_STATE_DIR": str(unaudited_state)},
            ) as unaudited,
            process("-m", "benches.otlp_receiver", "--port", str(ports["otlp"]), port=ports["otlp"]),
            process(
                *traced_command,
                port=ports["gateway-traced"],
                env={**traced_env, "GATEWAY_METRICS_ADDR": "127.0.0.1:0"},
            ) as traced,
        ):
            targets = [
                ("upstream (HTTP, direct)", upstream_url, "bench", upstream.pid),
                ("grpc echo (loadgen ceiling)", f"127.0.0.1:{ports['echo']}", "bench", echo.pid),
                ("bare forwarder", f"127.0.0.1:{ports['forwarder']}", "bench", bare.pid),
                ("gateway", gateway_address, "bench", gateway.pid),
                ("gateway, audit log off", unaudited_address, "bench", unaudited.pid),
                ("gateway, OTLP tracing (100%) + metrics", traced_address, "bench", traced.pid),
            ]
            if args.aims:
                targets = [t for t in targets if t[0] in AIMS_TARGETS]
                rounds = [
                    [
                        drive(name, target, model, mode, c, args.processes, args.duration, pid, args.client)
                        for mode in modes
                        for c in concurrencies
                        for name, target, model, pid in targets
                    ]
                    for _ in range(args.rounds)
                ]
                print_table(median_points(rounds))
                print()
                print_shares(rounds)
                return
            doors = [
                drive(name, target, "bench", mode, 16, args.processes, args.duration, pid, "python")
                for mode in ("unary", "stream")
                for name, target, pid in (
                    ("upstream (HTTP, direct)", upstream_url, upstream.pid),
                    ("bare forwarder", f"127.0.0.1:{ports['forwarder']}", bare.pid),
                    ("gateway, gRPC door", gateway_address, gateway.pid),
                    ("gateway, HTTP door", http_url, gateway.pid),
                )
                if not args.cache_only
            ]
            if args.front_doors:
                print_table(doors)
                return
            for model in ("bench-exact", "bench-semantic"):
                prime(gateway_address, model)
            cache = [
                drive(name, gateway_address, model, mode, 16, args.processes, args.duration, gateway.pid, args.client)
                for mode in ("unary", "stream")
                for name, model in (
                    ("gateway, uncached", "bench"),
                    ("gateway, exact cache hits", "bench-exact"),
                    ("gateway, semantic cache hits", "bench-semantic"),
                )
            ]
            if args.cache_only:
                print_cache(cache)
                return
            points = [
                drive(name, target, model, mode, c, args.processes, args.duration, pid, args.client)
                for mode in modes
                for c in concurrencies
                for name, target, model, pid in targets
            ]
            failover = [
                drive(name, target, model, "unary", 16, args.processes, args.duration, pid, args.client)
                for name, target, model, pid in (
                    (
                        "bare forwarder -> 30%-failing upstream",
                        f"127.0.0.1:{ports['flaky-forwarder']}",
                        "bench",
                        flaky_bare.pid,
                    ),
                    ("gateway route: 30%-failing -> healthy", gateway_address, "failover", gateway.pid),
                    ("gateway -> healthy upstream", gateway_address, "bench", gateway.pid),
                )
            ]
    print_table(points)
    print()
    print_table(doors)
    print()
    print_failover(failover)
    print()
    print_cache(cache)


AIMS_TARGETS = ("bare forwarder", "gateway", "gateway, OTLP tracing (100%) + metrics")
"""Issue 15's aims compare the gateway (and its traced self) with the bare forwarder, nothing else."""


def median_points(rounds: list[list[Point]]) -> list[Point]:
    """Each point's median over the rounds, field by field (the rounds list their points in one order)."""
    return [
        Point(
            target=same[0].target,
            mode=same[0].mode,
            concurrency=same[0].concurrency,
            rps=statistics.median(p.rps for p in same),
            p50_ms=statistics.median(p.p50_ms for p in same),
            p99_ms=statistics.median(p.p99_ms for p in same),
            ttfc_p50_ms=statistics.median(p.ttfc_p50_ms for p in same if p.ttfc_p50_ms is not None)
            if same[0].ttfc_p50_ms is not None
            else None,
            errors=sum(p.errors for p in same),
            success=statistics.median(p.success for p in same),
            cpu_us_per_call=statistics.median(p.cpu_us_per_call for p in same),
        )
        for same in zip(*rounds, strict=True)
    ]


def print_shares(rounds: list[list[Point]]) -> None:
    """Each round's gateway against the forwarder of the same round: the spread the medians hide."""
    print("| mode | c | target | req/s share, each round | CPU a call, x forwarder, each round | added p50 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    first = rounds[0]
    for i, point in enumerate(first):
        if point.target == "bare forwarder":
            continue
        shares, cpus, added = [], [], []
        for points in rounds:
            mine = points[i]
            forwarder = next(
                p
                for p in points
                if p.target == "bare forwarder" and p.mode == mine.mode and p.concurrency == mine.concurrency
            )
            shares.append(f"{mine.rps / forwarder.rps:.2f}")
            cpus.append(f"{mine.cpu_us_per_call / forwarder.cpu_us_per_call:.2f}")
            added.append(mine.p50_ms - forwarder.p50_ms)
        print(
            f"| {point.mode} | {point.concurrency} | {point.target} | {' '.join(shares)} | {' '.join(cpus)} | "
            f"{statistics.median(added):.2f} |"
        )


def print_table(points: list[Point]) -> None:
    print(
        "| mode | c | target | req/s | p50 ms | p99 ms | TTFC p50 ms | errors | server CPU µs/call "
        "| share of forwarder (req/s) | forwarder CPU / server CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for point in points:
        forwarder = next(
            p
            for p in points
            if p.target == "bare forwarder" and p.mode == point.mode and p.concurrency == point.concurrency
        )
        ttfc = f"{point.ttfc_p50_ms:.2f}" if point.ttfc_p50_ms is not None else "-"
        print(
            f"| {point.mode} | {point.concurrency} | {point.target} | {point.rps:,.0f} | {point.p50_ms:.2f} | "
            f"{point.p99_ms:.2f} | {ttfc} | {point.errors} | {point.cpu_us_per_call:.0f} | "
            f"{point.rps / forwarder.rps:.2f} | {forwarder.cpu_us_per_call / point.cpu_us_per_call:.2f} |"
        )


def print_failover(points: list[Point]) -> None:
    print("| unary, c=16 | req/s | success | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for point in points:
        print(f"| {point.target} | {point.rps:,.0f} | {point.success:.1%} | {point.p50_ms:.2f} | {point.p99_ms:.2f} |")


def print_cache(points: list[Point]) -> None:
    """The cached models against the uncached one on the same gateway, same run."""
    print(
        "| mode, c=16 | target | req/s | p50 ms | p99 ms | TTFC p50 ms | errors | server CPU µs/call "
        "| ratio to uncached |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for point in points:
        uncached = next(p for p in points if p.target == "gateway, uncached" and p.mode == point.mode)
        ttfc = f"{point.ttfc_p50_ms:.2f}" if point.ttfc_p50_ms is not None else "-"
        print(
            f"| {point.mode} | {point.target} | {point.rps:,.0f} | {point.p50_ms:.2f} | {point.p99_ms:.2f} | {ttfc} | "
            f"{point.errors} | {point.cpu_us_per_call:.0f} | {point.rps / uncached.rps:.2f} |"
        )


if __name__ == "__main__":
    main()
