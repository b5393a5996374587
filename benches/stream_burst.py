"""A burst of long streams against the gateway and against a bare grpc.aio server, in one run (the scale-out issue).

Two OpenAI-format upstreams (benches/upstream.py): a slow one whose streamed answers are `--chunks` words
`--interval` seconds apart (10 words a second apart: a 10 s answer), and a quick one. Each target server is started
fresh for each point: the gateway (full pipeline, audit log on); the reference, a bare grpc.aio + aiohttp forwarder
with the gateway's own gRPC options (benches/reference_servers.py); `reference-grpc-defaults`, the same with gRPC's
defaults for the options the gateway sets against losing calls (the issue's set-up); or a `--variant`, the gateway
run another way (a wrapper module, an older tree) for a same-run A/B. Against it:

- a prober process makes quick unary calls (model `quick`) at a steady rate, first alone (idle), then beside
- `--clients` processes that open `--streams` ChatStream calls (model `slow`) between them, evenly over `--spread`
  seconds, over `--channels` connections each.

Reported per point: the streams' outcomes by status (lost: any status but OK; "at once": within a second of opening),
the audit records the gateway wrote for them (read from its SQLite ledger after a graceful stop; a record per call,
whatever its outcome), the server's RSS growth at its peak divided by the streams open at that moment, its CPU, and
the quick calls' p50/p99 alone and during the burst (also split: while streams are opening, until the last one's
first chunk, and after). Every process listens on 127.0.0.1 only; every loop is bounded.

    python -m benches.stream_burst                        # 2,000 then 5,000 streams, once each (~2 min)
    python -m benches.stream_burst --streams 5000 --repeat 3 --targets reference-grpc-defaults reference gateway
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, cpu_seconds, free_port, wait_for_port

GRPC_DEFAULTS = (
    "grpc.server.max_pending_requests=1000",
    "grpc.server.max_pending_requests_hard_limit=3000",
    "grpc.server_max_unrequested_time_in_server=30",
    "grpc.http.overload_protection=1",
)
"""gRPC's own values of the options the gateway now sets against losing calls (python/gateway/server/app.py): the
issue's set-up."""
READY_WAIT_S = 120.0
"""How long the client processes may take to start up (imports, connections, the prober's first call)."""
SETTLE_S = 0.5
"""From the last client's start-up to the idle window."""
IDLE_S = 3.0
"""How long the prober runs alone before the burst."""
AT_ONCE_S = 1.0
"""A stream that ended with an error within this long of opening ended "at once"."""


def gateway_config(slow_url: str, quick_url: str, max_connections: int, extra: str) -> str:
    return f"""
providers:
  - name: slow-upstream
    type: openai
    base_url: {slow_url}
    api_key_env: BENCH_UPSTREAM_KEY
    # A connection per open stream: the burst measures the gateway, not a queue for the provider's pool.
    max_connections: {max_connections}
  - name: quick-upstream
    type: openai
    base_url: {quick_url}
    api_key_env: BENCH_UPSTREAM_KEY
models:
  - name: slow
    provider: slow-upstream
    upstream_model: gpt-4o-mini
  - name: quick
    provider: quick-upstream
    upstream_model: gpt-4o-mini
keys:
  - name: bench-service
    key_env: {BENCH_KEY_ENV}
    team: bench
    rpm: 100000000
    tpm: 100000000000
    max_concurrent: 100000
{extra}
"""


@contextlib.contextmanager
def server(args: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A server process, stopped gracefully (SIGTERM) on exit so the gateway writes its last audit records."""
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, *args], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr
        )
        try:
            try:
                wait_for_port(port)
            except TimeoutError:
                raise TimeoutError(f"{' '.join(args)} did not start:\n{log.read_text()[-2000:]}") from None
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class RssSampler:
    """The server's resident set every 20 ms, with the time of each sample, from /proc in a thread."""

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(OSError):
                for line in self._path.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.time(), int(line.split()[1]) * 1024))
                        break

    def idle(self, start: float, end: float) -> int:
        return int(statistics.median(rss for at, rss in self.samples if start <= at < end))

    def peak(self, start: float, end: float) -> tuple[float, int]:
        """The highest sample in the window, and when it was taken."""
        return max(((at, rss) for at, rss in self.samples if start <= at < end), key=lambda sample: sample[1])


@dataclass
class Point:
    target: str
    streams: int
    codes: dict[str, int]
    at_once: int
    first_chunk_p50_s: float
    end_p50_s: float
    audited: int | None
    unmatched_ids: int | None
    audit_codes: dict[str, int] | None
    log_lines: int
    rss_idle_mb: float
    open_at_peak: int
    kb_per_stream: float
    """The RSS growth from idle to the peak, divided by the streams open at the peak."""
    cpu_s: float
    idle_p50_ms: float
    idle_p99_ms: float
    burst_p50_ms: float
    burst_p99_ms: float
    probe_errors: int
    opening_s: float
    """From the first stream's opening to the last stream's first chunk."""
    opening_p99_ms: float
    streaming_p99_ms: float
    details: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def lost(self) -> int:
        return self.streams - self.codes.get("OK", 0)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1000 if ordered else float("nan")


def run_point(
    name: str, command: list[str], port: int, env: dict[str, str], state: Path | None, args: argparse.Namespace
) -> Point:
    target = f"127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="burst-", suffix=".log")[1])
    answer_s = args.chunks * args.interval
    with tempfile.TemporaryDirectory() as tmp, server(command, port, env, log) as proc, RssSampler(proc.pid) as rss:
        # The prober runs until the streams have ended (the orchestrator creates the stop file), at most this long.
        until = time.time() + READY_WAIT_S + SETTLE_S + IDLE_S + args.spread + answer_s + 180
        stop_file, go_file = Path(tmp) / "stop", Path(tmp) / "go"
        ready = [Path(tmp) / f"ready-{i}" for i in range(args.clients + 1)]
        probe_out = Path(tmp) / "probe.json"
        client = [sys.executable, "-m", "benches.burst_client"]
        probe_args = ["--model", "quick", "--rate", str(args.probe_rate), "--until", str(until)]
        probe_args += ["--stop-file", str(stop_file), "--ready-file", str(ready[-1])]
        prober = subprocess.Popen([*client, "probe", "--target", target, *probe_args, "--out", str(probe_out)])
        clients_n = args.clients
        per = [args.streams // clients_n + (1 if i < args.streams % clients_n else 0) for i in range(clients_n)]
        outs = [Path(tmp) / f"streams-{i}.json" for i in range(clients_n)]
        burst_args = ["--spread", str(args.spread), "--go-file", str(go_file), "--channels", str(args.channels)]
        clients = [
            subprocess.Popen(
                [
                    *client,
                    "streams",
                    "--target",
                    target,
                    "--model",
                    "slow",
                    "--count",
                    str(count),
                    *burst_args,
                    "--ready-file",
                    str(ready_file),
                    "--out",
                    str(out),
                ]
            )
            for count, out, ready_file in zip(per, outs, ready[:-1], strict=True)
        ]
        # The idle window starts once every client has started up: their imports and connections, and the server's
        # work for its first quick call, are not idle latency.
        deadline = time.time() + READY_WAIT_S
        while not all(path.exists() for path in ready):
            if time.time() > deadline:
                raise TimeoutError(f"the clients did not start within {READY_WAIT_S:.0f} s")
            time.sleep(0.05)
        idle_at = time.time() + SETTLE_S
        burst_at = idle_at + IDLE_S
        go_file.with_suffix(".tmp").write_text(repr(burst_at))
        go_file.with_suffix(".tmp").replace(go_file)
        time.sleep(max(0.0, burst_at - time.time()))
        cpu_before = cpu_seconds(proc.pid)
        spy = None
        if args.profile:
            # The server's stacks through the burst (py-spy's raw format: collapsed stacks, one line each).
            out = Path(args.profile) / f"{name}-{args.streams}.txt"
            duration = str(int(args.spread + answer_s + 1))
            spy_args = ["--duration", duration, "--rate", "200", "--threads", *(["--native"] if args.native else [])]
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(proc.pid),
                    *spy_args,
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        for run in clients:
            run.wait(timeout=answer_s + 180)
        cpu = cpu_seconds(proc.pid) - cpu_before
        stop_file.touch()
        prober.wait(timeout=60)
        if spy is not None:
            spy.wait(timeout=60)
        results = [orjson.loads(out.read_bytes()) for out in outs]
        probe = orjson.loads(probe_out.read_bytes())["calls"]
        rss_idle = rss.idle(idle_at, burst_at)
        peak_at, rss_peak = rss.peak(burst_at, time.time())
    streams = [s for r in results for s in r["streams"]]
    codes = collections.Counter(s["code"] for s in streams)
    details = collections.Counter(f"{s['code']}: {s['details']}" for s in streams if s["code"] != "OK")
    at_once = sum(1 for s in streams if s["code"] != "OK" and s["end"] - s["start"] < AT_ONCE_S)
    # The memory figure is per stream open at the peak (the server answering it, the client waiting for its end).
    open_at_peak = sum(1 for s in streams if s["start"] <= peak_at < s["end"])
    audited = unmatched = audit_codes = None
    if state is not None:
        with contextlib.closing(sqlite3.connect(state / "gateway.db")) as db:
            rows = db.execute("SELECT request_id, status FROM audit WHERE model = 'slow'").fetchall()
        audited = len(rows)
        ids = {row[0] for row in rows}
        unmatched = sum(1 for s in streams if s["id"] and s["id"] not in ids)
        audit_codes = dict(collections.Counter(row[1] or "OK" for row in rows))
    log_lines = sum(1 for line in log.read_text(errors="replace").splitlines() if "call failed" in line)
    if args.keep_logs:
        log.replace(Path(args.keep_logs) / f"{name}-{args.streams}.log")
    else:
        log.unlink()
    idle = [lat for at, lat, code in probe if idle_at <= at < burst_at and code == "OK"]
    # The burst: from the first stream's opening to the last one's end. Opening: until the last stream had its first
    # chunk; then: the rest of the burst, streams streaming and ending.
    ended = max(s["end"] for s in streams)
    burst = [lat for at, lat, code in probe if burst_at <= at < ended and code == "OK"]
    firsts = [s["start"] + s["first_chunk_s"] for s in streams if s["first_chunk_s"] is not None]
    opened = max(firsts, default=burst_at)
    opening = [lat for at, lat, code in probe if burst_at <= at < opened and code == "OK"]
    streaming = [lat for at, lat, code in probe if opened <= at < ended and code == "OK"]
    return Point(
        target=name,
        streams=len(streams),
        codes=dict(codes),
        at_once=at_once,
        first_chunk_p50_s=statistics.median(s["first_chunk_s"] for s in streams if s["first_chunk_s"] is not None)
        if any(s["first_chunk_s"] is not None for s in streams)
        else float("nan"),
        end_p50_s=statistics.median(s["end"] - s["start"] for s in streams),
        audited=audited,
        unmatched_ids=unmatched,
        audit_codes=audit_codes,
        log_lines=log_lines,
        rss_idle_mb=rss_idle / 2**20,
        open_at_peak=open_at_peak,
        kb_per_stream=(rss_peak - rss_idle) / max(open_at_peak, 1) / 1024,
        cpu_s=cpu,
        idle_p50_ms=percentile(idle, 0.5),
        idle_p99_ms=percentile(idle, 0.99),
        burst_p50_ms=percentile(burst, 0.5),
        burst_p99_ms=percentile(burst, 0.99),
        probe_errors=sum(1 for _, _, code in probe if code != "OK"),
        opening_s=opened - burst_at,
        opening_p99_ms=percentile(opening, 0.99),
        streaming_p99_ms=percentile(streaming, 0.99),
        details=details,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, nargs="+", default=[2000, 5000], help="burst sizes, in this order")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each point (medians are reported)")
    parser.add_argument("--spread", type=float, default=1.0, help="seconds over which a burst opens")
    parser.add_argument("--chunks", type=int, default=10, help="words per slow answer")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between a slow answer's words")
    parser.add_argument("--clients", type=int, default=2, help="stream-opening client processes")
    parser.add_argument("--channels", type=int, default=4, help="connections per client process")
    parser.add_argument("--probe-rate", type=float, default=100.0, help="quick calls per second")
    parser.add_argument("--max-connections", type=int, default=10_000, help="upstream pool of both servers")
    parser.add_argument(
        "--targets",
        nargs="+",
        default=["reference", "gateway"],
        help="reference, reference-grpc-defaults (the options against losing calls at gRPC's defaults), gateway, or a "
        "--variant",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=ARGS: another gateway target, run as `python ARGS serve ...` (e.g. a wrapper module for an A/B)",
    )
    parser.add_argument("--gateway-config", default="", help="YAML appended to the gateway's config")
    parser.add_argument("--reference-option", action="append", default=[], help="a gRPC option, NAME=INT")
    parser.add_argument("--gateway-command", default="-m gateway", help="how python runs the gateway's CLI")
    parser.add_argument("--keep-logs", default="", help="a folder: keep each server's stderr there")
    parser.add_argument("--profile", default="", help="a folder: record each server's stacks there with py-spy")
    parser.add_argument("--native", action="store_true", help="--profile: with native frames (slower)")
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant)

    slow_port, quick_port = free_port(), free_port()
    slow_url = f"http://127.0.0.1:{slow_port}/v1"
    quick_url = f"http://127.0.0.1:{quick_port}/v1"
    upstream = [sys.executable, "-m", "benches.upstream"]
    slow_cmd = [*upstream, "--port", str(slow_port), "--chunks", str(args.chunks), "--interval", str(args.interval)]
    points: list[Point] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as upstreams,
    ):
        for cmd, port in ((slow_cmd, slow_port), ([*upstream, "--port", str(quick_port)], quick_port)):
            proc = upstreams.enter_context(subprocess.Popen(cmd))
            upstreams.callback(proc.terminate)
            wait_for_port(port)
        config = Path(tmp) / "burst.yaml"
        config.write_text(gateway_config(slow_url, quick_url, args.max_connections, args.gateway_config))
        for count in args.streams:
            for run in range(args.repeat):
                for name in args.targets:
                    port = free_port()
                    args_for = argparse.Namespace(**{**vars(args), "streams": count})
                    if not name.startswith("reference"):
                        state = Path(tmp) / f"state-{name}-{count}-{run}"
                        state.mkdir()
                        env = {
                            "GATEWAY_BOOTSTRAP_KEY": BENCH_ADMIN_KEY,
                            BENCH_KEY_ENV: BENCH_KEY,
                            "GATEWAY_STATE_DIR": str(state),
                            "BENCH_UPSTREAM_KEY": "sk-bench",
                            "GATEWAY_METRICS_ADDR": "127.0.0.1:0",
                        }
                        command = [*variants.get(name, args.gateway_command).split(), "serve", "--config", str(config)]
                        command += ["--address", f"127.0.0.1:{port}"]
                        points.append(run_point(name, command, port, env, state, args_for))
                    else:
                        command = ["-m", "benches.reference_servers", "forwarder", "--port", str(port)]
                        command += ["--upstream", quick_url, "--stream-upstream", slow_url, "--gateway-options"]
                        command += ["--max-connections", str(args.max_connections)]
                        options = [
                            *(GRPC_DEFAULTS if name == "reference-grpc-defaults" else ()),
                            *args.reference_option,
                        ]
                        command += [f"--option={option}" for option in options]
                        points.append(run_point(name, command, port, {}, None, args_for))
                    print_point(points[-1])
    print()
    print_table(points, args)


def print_point(point: Point) -> None:
    """One run's figures, as they come."""
    audit = f"audited {point.audited} {point.audit_codes}, unmatched ids {point.unmatched_ids}, "
    print(
        f"{point.target} {point.streams}: {point.codes}, at once {point.at_once}, "
        + (audit if point.audited is not None else "")
        + f"'call failed' log lines {point.log_lines}, first chunk p50 {point.first_chunk_p50_s:.2f} s, "
        f"end p50 {point.end_p50_s:.2f} s, {point.kb_per_stream:.1f} KB per stream ({point.open_at_peak} open at "
        f"the peak), CPU {point.cpu_s:.1f} s; quick p50/p99 idle {point.idle_p50_ms:.2f}/{point.idle_p99_ms:.2f} ms, "
        f"burst {point.burst_p50_ms:.2f}/{point.burst_p99_ms:.2f} ms (p99 while opening ({point.opening_s:.1f} s) "
        f"{point.opening_p99_ms:.1f}, then {point.streaming_p99_ms:.1f})",
        flush=True,
    )
    for detail, n in point.details.most_common(5):
        print(f"    {n} x {detail}", flush=True)


def _median(points: list[Point], attr: str) -> float:
    return statistics.median(float(getattr(p, attr)) for p in points)


def print_table(points: list[Point], args: argparse.Namespace) -> None:
    print(
        f"{args.repeat} run(s) per row, medians; streams of {args.chunks} words {args.interval:g} s apart, opened "
        f"over {args.spread:g} s by {args.clients} processes x {args.channels} connections; quick calls at "
        f"{args.probe_rate:g}/s"
    )
    print(
        "| streams | target | OK | lost (at once) | audited | RSS idle MB | KB per open stream | server CPU s "
        "| quick p50 idle → burst ms | quick p99 idle → burst ms | p99 burst / idle |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    order = {name: i for i, name in enumerate(args.targets)}
    keys = sorted({(p.streams, p.target) for p in points}, key=lambda k: (k[0], order.get(k[1], 0)))
    for streams, target in keys:
        group = [p for p in points if p.streams == streams and p.target == target]
        ok = statistics.median(p.codes.get("OK", 0) for p in group)
        lost = statistics.median(p.lost for p in group)
        at_once = statistics.median(p.at_once for p in group)
        audited = "-" if group[0].audited is None else f"{statistics.median(p.audited or 0 for p in group):,.0f}"
        print(
            f"| {streams:,} | {target} | {ok:,.0f} | {lost:,.0f} ({at_once:,.0f}) | {audited} "
            f"| {_median(group, 'rss_idle_mb'):.0f} | {_median(group, 'kb_per_stream'):.1f} "
            f"| {_median(group, 'cpu_s'):.1f} "
            f"| {_median(group, 'idle_p50_ms'):.2f} → {_median(group, 'burst_p50_ms'):.2f} "
            f"| {_median(group, 'idle_p99_ms'):.2f} → {_median(group, 'burst_p99_ms'):.2f} "
            f"| {statistics.median(p.burst_p99_ms / p.idle_p99_ms for p in group):.1f} |"
        )


if __name__ == "__main__":
    main()
