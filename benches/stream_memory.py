"""What an open stream keeps in memory, layer by layer: a bare grpc.aio stream, a bare aiohttp SSE read, the bare
forwarder (both together) and the gateway, each measured in a fresh process of its own.

Each opens `--streams` streams from a client process (benches/burst_client.py) against a slow upstream
(benches/upstream.py, a word a second), waits until they are all open, and reports the process's RSS growth and
the garbage collector's tracked objects, divided by the open streams. Bounded: one burst per layer, about 15 s each.

    python -m benches.stream_memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, free_port, wait_for_port
from benches.reference_servers import Forwarder
from benches.stream_burst import gateway_config
from gateway.config.loader import parse_config
from gateway.config.schema import ServerConfig
from gateway.server.app import build_gateway, server_options, settle_heap

LAYERS = ("grpc.aio", "aiohttp", "forwarder", "gateway")
OPEN_S = 5.0
"""From the first stream's opening to the measurement; every stream is open by then and none has ended."""


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Sleepy(gateway_pb2_grpc.GatewayServicer):
    """grpc.aio alone: a stream that sends a word a second, as the slow upstream does."""

    async def ChatStream(self, request: pb.ChatRequest, context: Any) -> AsyncIterator[pb.ChatChunk]:  # noqa: N802
        for _ in range(10):
            yield pb.ChatChunk(id="sleepy", delta=" word")
            await asyncio.sleep(1.0)


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "benches.upstream", "--port", str(port), "--chunks", "10", "--interval", "1"]
    proc = subprocess.Popen(command)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait()


@contextlib.asynccontextmanager
async def bare_server(servicer: gateway_pb2_grpc.GatewayServicer) -> AsyncIterator[str]:
    """A bare grpc.aio server with the gateway's options, serving `servicer`; yields its address."""
    server = grpc.aio.server(options=server_options(ServerConfig()))
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(1.0)


@contextlib.asynccontextmanager
async def forwarder_server(quick_url: str, slow_url: str) -> AsyncIterator[str]:
    """The bare forwarder (Chat to `quick_url`, ChatStream to `slow_url`) on a bare server; yields its address."""
    forwarder = Forwarder(quick_url, slow_url, max_connections=10_000)
    try:
        async with bare_server(forwarder) as address:
            yield address
    finally:
        await forwarder.close()


@contextlib.asynccontextmanager
async def in_process_gateway(slow_url: str, quick_url: str) -> AsyncIterator[str]:
    """The gateway on benches/stream_burst.py's config, in this process, built and settled as `gateway serve` does;
    yields its address."""
    os.environ.update({"GATEWAY_BOOTSTRAP_KEY": BENCH_ADMIN_KEY, BENCH_KEY_ENV: BENCH_KEY})
    os.environ["BENCH_UPSTREAM_KEY"] = "sk-bench"
    with tempfile.TemporaryDirectory() as state:
        config = parse_config(gateway_config(slow_url, quick_url, 10_000, ""))
        gateway = await build_gateway(config, address="127.0.0.1:0", state_dir=Path(state), metrics_address="")
        settle_heap()
        await gateway.server.start()
        try:
            yield f"127.0.0.1:{gateway.port}"
        finally:
            await gateway.stop(1.0)


async def burst(target: str, streams: int) -> tuple[float, float]:
    """Opens the streams from a client process; returns (RSS bytes, tracked objects) per stream, once all are open."""
    await asyncio.sleep(0.5)  # the server settles: its first allocations are not the streams'
    gc.collect()
    before, objects = rss(), len(gc.get_objects())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "streams.json"
        burst_args = ["--count", str(streams), "--spread", "1", "--channels", "2", "--start-at", str(time.time() + 1.5)]
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benches.burst_client", "streams", "--target", target, "--model", "slow",
            *burst_args, "--out", str(out),
        )  # fmt: skip
        await asyncio.sleep(1.5 + OPEN_S)
        grown, tracked = rss() - before, len(gc.get_objects()) - objects
        await client.wait()
        outcomes = orjson.loads(await asyncio.to_thread(out.read_bytes))["streams"]
    if any(s["code"] != "OK" for s in outcomes):
        raise RuntimeError(f"{target}: streams failed")
    return grown / streams, tracked / streams


async def aiohttp_reads(url: str, streams: int) -> tuple[float, float]:
    """aiohttp alone: `streams` SSE reads held open, as a forwarder's are."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=streams)) as session:
        gc.collect()
        before, objects = rss(), len(gc.get_objects())

        async def read() -> None:
            body = b'{"model":"slow","stream":true}'
            async with session.post(url + "/chat/completions", data=body) as response:
                async for _line in response.content:
                    pass

        reads = []
        for i in range(streams):
            reads.append(asyncio.ensure_future(read()))
            if i % 50 == 49:
                await asyncio.sleep(0.01)
        await asyncio.sleep(OPEN_S)
        grown, tracked = rss() - before, len(gc.get_objects()) - objects
        await asyncio.gather(*reads)
    return grown / streams, tracked / streams


async def measure(layer: str, streams: int) -> tuple[float, float]:
    with upstream() as url:
        if layer == "aiohttp":
            return await aiohttp_reads(url, streams)
        if layer == "grpc.aio":
            async with bare_server(Sleepy()) as target:
                return await burst(target, streams)
        server = forwarder_server(url, url) if layer == "forwarder" else in_process_gateway(url, url)
        async with server as target:
            return await burst(target, streams)


def in_fresh_process(module: str, option: str, value: str, streams: int, timeout_s: float) -> dict[str, Any]:
    """Runs `python -m module option value --streams N` (one measurement, in a process of its own) and returns the
    JSON object it printed last."""
    done = subprocess.run(
        [sys.executable, "-m", module, option, value, "--streams", str(streams)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} {option} {value} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = orjson.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--layer", choices=LAYERS, help="measure one layer in this process (internal)")
    args = parser.parse_args()
    if args.layer:
        per_stream, objects = uvloop.run(measure(args.layer, args.streams))
        print(orjson.dumps({"bytes": per_stream, "objects": objects}).decode())
        return
    print(f"| {args.streams:,} streams open | RSS per open stream, KB | GC-tracked objects per stream |")
    print("| --- | --- | --- |")
    for layer in LAYERS:
        result = in_fresh_process("benches.stream_memory", "--layer", layer, args.streams, timeout_s=120)
        print(f"| {layer} | {result['bytes'] / 1024:.1f} | {result['objects']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
