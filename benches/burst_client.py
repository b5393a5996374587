"""The client side of benches/stream_burst.py: one process that opens a burst of long streams, or one that probes
with quick unary calls beside them. Bounded in count and time; writes one JSON file.

    python -m benches.burst_client streams --target 127.0.0.1:50051 --model slow --count 2500 --start-at T --out a.json
    python -m benches.burst_client probe --target 127.0.0.1:50051 --model quick --rate 100 --until T --stop-file F \
        --out p.json

`streams` opens its `--count` streams evenly over `--spread` seconds from the wall-clock time `--start-at`, over
`--channels` connections of its own, and records each stream's outcome: its status, when it ended, its first chunk,
its chunks and the request id the gateway gave it; with `--go-file`, it creates `--ready-file` once connected and
takes the start time from the go file when that appears. `probe` starts a quick call every 1/rate seconds (open loop:
a slow answer does not delay the next call) until `--until` or until `--stop-file` exists, creates `--ready-file`
once a call has succeeded, and records when each started, its latency and its status.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import orjson
import uvloop
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

_MESSAGES = [pb.Message(role="user", content="Tell me a long story, one word a second.")]
GO_WAIT_S = 120.0
"""How long a stream client waits for the go file."""
STREAM_TIMEOUT_S = 120.0
"""A stream's deadline: far above its answer's length, so no outcome is the client's own deadline."""


def _channel(target: str) -> grpc.aio.Channel:
    # A subchannel pool of its own: each channel is its own TCP connection (by default channels to one target share
    # one), so a burst over n channels is n connections, as n clients would open.
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


async def _stream(stub: gateway_pb2_grpc.GatewayStub, request: pb.ChatRequest, metadata: Any) -> dict[str, Any]:
    started = time.time()
    first = None
    chunks = 0
    request_id = ""
    code = "OK"
    details = ""
    try:
        async for chunk in stub.ChatStream(request, metadata=metadata, timeout=STREAM_TIMEOUT_S):
            if first is None:
                first = time.time()
                request_id = chunk.id
            chunks += 1
    except grpc.aio.AioRpcError as err:
        code = err.code().name
        details = err.details() or ""
    ended = time.time()
    return {
        "start": started,
        "end": ended,
        "first_chunk_s": None if first is None else first - started,
        "chunks": chunks,
        "id": request_id,
        "code": code,
        "details": details[:200],
    }


async def streams(args: argparse.Namespace) -> dict[str, Any]:
    channels = [_channel(args.target) for _ in range(args.channels)]
    stubs = [gateway_pb2_grpc.GatewayStub(c) for c in channels]
    # Connected before the burst: the burst measures the streams, not the handshakes.
    await asyncio.gather(*(asyncio.wait_for(c.channel_ready(), 20) for c in channels))
    request = pb.ChatRequest(model=args.model, messages=_MESSAGES, max_tokens=64)
    metadata = (("authorization", f"Bearer {args.key}"),)
    start_at = _start_time(args)  # blocks this loop, before the burst, while it has nothing else to do
    loop = asyncio.get_running_loop()
    begin = loop.time() + max(0.0, start_at - time.time())
    tasks = []
    for i in range(args.count):
        delay = begin + i * args.spread / args.count - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_stream(stubs[i % len(stubs)], request, metadata)))
    opened = time.time()
    results = await asyncio.gather(*tasks)
    for channel in channels:
        await channel.close()
    return {"opened_at": opened, "streams": results}


def _start_time(args: argparse.Namespace) -> float:
    """`--start-at`, or with `--go-file`: says it is ready (`--ready-file`), then waits for the go file and reads the
    start time from it, so that the orchestrator's idle window begins once every client has started up."""
    if not args.go_file:
        return float(args.start_at)
    Path(args.ready_file).touch()
    go = Path(args.go_file)
    for _ in range(int(GO_WAIT_S / 0.01)):
        if go.exists():
            return float(go.read_text())
        time.sleep(0.01)
    raise TimeoutError(f"no {go} after {GO_WAIT_S:.0f} s")


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    """Quick unary calls at a steady rate until `--until` or the stop file: (start, latency µs, status) each."""
    calls: list[tuple[float, int, str]] = []
    request = pb.ChatRequest(model=args.model, messages=_MESSAGES, max_tokens=16)
    metadata = (("authorization", f"Bearer {args.key}"),)

    async def one(stub: gateway_pb2_grpc.GatewayStub) -> None:
        started = time.time()
        begin = time.perf_counter()
        code = "OK"
        try:
            await stub.Chat(request, metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as err:
            code = err.code().name
        calls.append((started, int((time.perf_counter() - begin) * 1e6), code))

    async with _channel(args.target) as channel:
        await asyncio.wait_for(channel.channel_ready(), 20)
        stub = gateway_pb2_grpc.GatewayStub(channel)
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        next_at = loop.time()
        stop_at = next_at + max(0.0, args.until - time.time())
        stop_file = Path(args.stop_file) if args.stop_file else None
        ready_file = Path(args.ready_file) if args.ready_file else None
        while next_at < stop_at and not (stop_file is not None and stop_file.exists()):
            if ready_file is not None and any(code == "OK" for _, _, code in calls):
                ready_file.touch()  # the first call went through: the server's first-call work is behind
                ready_file = None
            task = asyncio.create_task(one(stub))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1 / args.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await asyncio.gather(*pending)
    return {"calls": calls}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["streams", "probe"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--count", type=int, default=1000, help="streams: how many to open")
    parser.add_argument("--spread", type=float, default=1.0, help="streams: seconds over which they open")
    parser.add_argument("--start-at", type=float, default=0.0, help="streams: wall-clock time of the first")
    parser.add_argument("--go-file", default="", help="streams: wait for this file; it holds the start time")
    parser.add_argument("--ready-file", default="", help="created once connected (probe: once a call succeeded)")
    parser.add_argument("--channels", type=int, default=1, help="streams: connections to spread them over")
    parser.add_argument("--rate", type=float, default=100.0, help="probe: calls per second")
    parser.add_argument("--until", type=float, default=0.0, help="probe: wall-clock time to stop at")
    parser.add_argument("--stop-file", default="", help="probe: stop once this file exists")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = uvloop.run(streams(args) if args.mode == "streams" else probe(args))
    # A file, not stdout: the event loop may leave stdout non-blocking, and a full pipe would cut the result short.
    args.out.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
