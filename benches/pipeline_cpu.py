"""Where the gateway's CPU goes: its Chat handler against the bare forwarder's, in one process, without gRPC.

Both call the same local upstream over aiohttp; the gRPC transport, which costs both the same, is left out. Reports
the median CPU time per call of each over alternating rounds, and per thread for the gateway (the event loop, the
ledger writer, the rest), so the pipeline's own cost and the audit log's can be told apart from the transport's, and
the garbage collector's passes during each handler's rounds.
Bounded: `--rounds` rounds of `--calls` calls at concurrency 16; everything on 127.0.0.1.

    python -m benches.pipeline_cpu
    python -m benches.pipeline_cpu --config-extra 'audit: {enabled: false}'
    python -m benches.pipeline_cpu --stages     # and the CPU each stage's hooks take, per call
    python -m benches.pipeline_cpu --traced     # and the same gateway tracing every call over OTLP/gRPC

With `--stages`, each synchronous hook of the gateway's chat chain (enter, end, exit) is timed with the loop thread's
CPU clock, less the clock's own cost, over the same rounds: where the pipeline's microseconds go, stage by stage. An
awaitable a hook returns is timed to its creation only; the provider call and the gRPC edge are not stages.

With `--traced`, a second gateway of the same config traces every call (sampler always_on) over OTLP/gRPC to a
local receiver process (benches.otlp_receiver), as benches.load's traced gateway does, and joins the rounds: what
tracing adds to a call, on the loop thread and on the export thread, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvloop
from llmgateway.v1 import gateway_pb2 as pb

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, free_port, gateway_config, process
from benches.reference_servers import Forwarder
from gateway.config import load_config
from gateway.pipeline.chain import Pipeline
from gateway.pipeline.stage import BaseStage
from gateway.server.app import Gateway, build_gateway

Handler = Callable[[pb.ChatRequest, Any], Awaitable[pb.ChatResponse]]
REQUEST = pb.ChatRequest(
    model="bench", messages=[pb.Message(role="user", content="Say hello in one short sentence, please.")]
)
CONCURRENCY = 16


class Context:
    """The parts of a grpc.aio servicer context the handlers read."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {BENCH_KEY}"),)

    def time_remaining(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"

    async def abort(self, code: object, details: str = "", trailing_metadata: object = ()) -> None:
        raise RuntimeError(f"the call failed: {code} {details}")


class StageClock:
    """The loop thread's CPU time in each hook of a pipeline's chat chain, summed over the calls it sees. It wraps
    the hooks of the chain's own stage objects (the outer stages and the chat stages, as `Pipeline` declares them)."""

    HOOKS = ("enter", "end", "exit")

    def __init__(self, pipeline: Pipeline) -> None:
        self.ns: dict[str, int] = {}
        self._overhead = self._clock_cost()
        seen: set[int] = set()
        for stage in pipeline._outer + pipeline._chat.stages:
            if id(stage) in seen:
                continue
            seen.add(id(stage))
            for hook in self.HOOKS:
                if getattr(type(stage), hook) is not getattr(BaseStage, hook):
                    setattr(stage, hook, self._timed(f"{stage.name}.{hook}", getattr(stage, hook)))

    @staticmethod
    def _clock_cost() -> int:
        clock = time.thread_time_ns
        best = 1 << 62
        for _ in range(20):
            started = clock()
            for _ in range(1000):
                clock()
            best = min(best, (clock() - started) // 1000)
        return best

    def _timed(self, name: str, hook: Callable[..., object]) -> Callable[..., object]:
        ns, clock, overhead = self.ns, time.thread_time_ns, self._overhead
        ns[name] = 0

        def timed(*args: object) -> object:
            started = clock()
            try:
                return hook(*args)
            finally:
                ns[name] += clock() - started - overhead

        return timed


class Collections:
    """The garbage collector's passes while a handler runs (gc.callbacks): how many, and the CPU they took on the
    thread that ran them. Objects a call leaves alive (queued spans, say) make young collections frequent and promote
    into the older generations, whose passes walk the whole heap."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.ns = 0
        self._started = 0
        gc.callbacks.append(self._seen)

    def _seen(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time_ns()
        else:
            self.passes[info["generation"]] += 1
            self.ns += time.thread_time_ns() - self._started

    def take(self) -> tuple[list[int], int]:
        """The passes and ns since the last take."""
        taken = (self.passes, self.ns)
        self.passes, self.ns = [0, 0, 0], 0
        return taken


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) of this process's threads (from /proc): the event loop's, the ledger writer's,
    the OTLP export worker's, and the rest's (gRPC's, aiosqlite's, threads outside Python)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    result: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        name = names.get(tid, "")
        label = (
            "event loop"
            if tid == str(os.getpid())
            else "ledger writer"
            if name.startswith("ledger")
            else "otlp export"
            if name.startswith("otlp")
            else "other"
        )
        result[label] = result.get(label, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return result


async def drive(handler: Handler, calls: int) -> None:
    context = Context()

    async def client(count: int) -> None:
        for _ in range(count):
            await handler(REQUEST, context)

    await asyncio.gather(*(client(calls // CONCURRENCY) for _ in range(CONCURRENCY)))


@contextlib.asynccontextmanager
async def bench_gateway(config_extra: str) -> AsyncIterator[tuple[Gateway, str]]:
    """The benchmark's gateway (its config plus `config_extra`), in this process, over a local upstream
    (benches.upstream); and the upstream's URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    with tempfile.TemporaryDirectory() as state, process("-m", "benches.upstream", "--port", str(port), port=port):
        os.environ["GATEWAY_BOOTSTRAP_KEY"] = BENCH_ADMIN_KEY
        os.environ[BENCH_KEY_ENV] = BENCH_KEY
        os.environ["BENCH_UPSTREAM_KEY"] = "sk-bench"
        config_file = Path(state) / "bench.yaml"
        config_file.write_text(gateway_config(url, url) + config_extra + "\n")
        gateway = await build_gateway(
            load_config(str(config_file)), address="127.0.0.1:0", state_dir=Path(state), metrics_address="127.0.0.1:0"
        )
        yield gateway, url


def traced_config(port: int) -> str:
    """The config that traces every call over OTLP/gRPC to a receiver on `port` (benches.load's traced gateway sets
    the same through OTEL_* variables)."""
    return (
        "observe: {tracing: {exporter: otlp, protocol: grpc, "
        f'endpoint: "http://127.0.0.1:{port}", sampler: always_on}}}}'
    )


@contextlib.contextmanager
def otlp_receiver() -> Iterator[int]:
    """A local OTLP/gRPC receiver process (benches.otlp_receiver) and its port."""
    port = free_port()
    with process("-m", "benches.otlp_receiver", "--port", str(port), port=port):
        yield port


async def measure(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        gateway, url = await stack.enter_async_context(bench_gateway(args.config_extra))
        forwarder = Forwarder(url)
        handlers: dict[str, Handler] = {"bare forwarder": forwarder.Chat, "gateway": gateway.servicer.Chat}
        gateways = {"gateway": gateway}
        if args.traced:
            port = stack.enter_context(otlp_receiver())
            traced, _ = await stack.enter_async_context(bench_gateway(f"{args.config_extra}\n{traced_config(port)}"))
            handlers["gateway, traced"] = traced.servicer.Chat
            gateways["gateway, traced"] = traced
        for handler in handlers.values():
            await drive(handler, args.calls // 4)  # warm: connections, caches
        stages = StageClock(gateway.servicer._pipeline) if args.stages else None
        cpu: dict[str, list[float]] = {name: [] for name in handlers}
        threads: dict[str, dict[str, list[float]]] = {name: {} for name in gateways}
        collections = Collections()
        passes: dict[str, list[int]] = {name: [0, 0, 0] for name in handlers}
        collecting: dict[str, list[float]] = {name: [] for name in handlers}
        for _ in range(args.rounds):
            for name, handler in handlers.items():
                collections.take()
                before, started = thread_cpu_s(), time.process_time()
                await drive(handler, args.calls)
                served = gateways.get(name)
                if served is not None:
                    await served.audit.flush()  # the round's records are written within it
                    if served.tracing is not None:  # and its spans exported
                        await asyncio.to_thread(served.tracing.force_flush)
                cpu[name].append((time.process_time() - started) / args.calls * 1e6)
                counts, ns = collections.take()
                passes[name] = [total + count for total, count in zip(passes[name], counts, strict=True)]
                collecting[name].append(ns / args.calls / 1000)
                if served is not None:
                    after = thread_cpu_s()
                    for label, seconds in after.items():
                        used = (seconds - before.get(label, 0.0)) / args.calls * 1e6
                        threads[name].setdefault(label, []).append(used)
        await forwarder.close()
        for served in gateways.values():
            await served.stop(1.0)
    base = statistics.median(cpu["bare forwarder"])
    print(f"| handler, c={CONCURRENCY}, {args.rounds} x {args.calls:,} calls | CPU µs/call (median) | over forwarder |")
    print("| --- | --- | --- |")
    for name, values in cpu.items():
        print(f"| {name} | {statistics.median(values):.0f} | {statistics.median(values) - base:+.0f} |")
    for name, labels in threads.items():
        for label, values in sorted(labels.items()):
            print(f"| {name}: {label} thread(s) | {statistics.median(values):.0f} | |")
    print("\n| handler | GC passes by generation (0/1/2), all rounds | GC CPU µs/call (median) |")
    print("| --- | --- | --- |")
    for name, counts in passes.items():
        print(f"| {name} | {'/'.join(map(str, counts))} | {statistics.median(collecting[name]):.1f} |")
    if stages is not None:
        calls = args.rounds * args.calls
        print(f"\n| stage hook (gateway, loop thread) | CPU µs/call, mean of {calls:,} calls |")
        print("| --- | --- |")
        for name, ns in sorted(stages.ns.items(), key=lambda item: -item[1]):
            print(f"| {name} | {ns / calls / 1000:.1f} |")
        print(f"| all hooks | {sum(stages.ns.values()) / calls / 1000:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3200, help="calls per round and handler")
    parser.add_argument("--config-extra", default="", help="YAML appended to the benchmark's gateway config")
    parser.add_argument("--stages", action="store_true", help="also time each stage hook of the gateway's chain")
    parser.add_argument("--traced", action="store_true", help="also a gateway tracing every call over OTLP/gRPC")
    uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
