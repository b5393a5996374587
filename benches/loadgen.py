"""One load-generating process: a fixed number of concurrent workers, bounded in time and count.

Prints one JSON object: the number of completed calls, errors, the measured window, and the latencies in
microseconds (time to the answer; for streams also time to the first chunk). The orchestrator (benches/load.py) runs
several of these in parallel and merges them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

_MESSAGES = [
    pb.Message(role="system", content="You are a concise assistant."),
    pb.Message(role="user", content="Summarise the benefits of a central LLM gateway in two sentences."),
]


def bench_request(model: str) -> pb.ChatRequest:
    """The benchmark's request (clients/rust sends the same)."""
    return pb.ChatRequest(model=model, messages=_MESSAGES, max_tokens=64)


async def _grpc_worker(
    stub: gateway_pb2_grpc.GatewayStub,
    mode: str,
    model: str,
    metadata: Any,
    stop_at: float,
    measure_from: float,
    budget: list[int],
    out: dict[str, list[int]],
) -> None:
    request = bench_request(model)
    while budget[0] > 0:
        budget[0] -= 1
        start = time.perf_counter()
        if start >= stop_at:
            return
        out["calls"][0] += 1
        try:
            if mode == "unary":
                await stub.Chat(request, metadata=metadata, timeout=10)
                first = None
            else:
                first = None
                async for _chunk in stub.ChatStream(request, metadata=metadata, timeout=10):
                    if first is None:
                        first = time.perf_counter()
        except grpc.aio.AioRpcError as err:
            if start >= measure_from:
                out["errors"].append(err.code().value[0])
            continue
        end = time.perf_counter()
        if start >= measure_from:
            out["latency_us"].append(int((end - start) * 1e6))
            if first is not None:
                out["ttfc_us"].append(int((first - start) * 1e6))


async def _http_worker(
    session: aiohttp.ClientSession,
    url: str,
    mode: str,
    model: str,
    key: str,
    stop_at: float,
    measure_from: float,
    budget: list[int],
    out: dict[str, list[int]],
) -> None:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in _MESSAGES],
        "max_tokens": 64,
    }
    if mode == "stream":
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    data = orjson.dumps(body)
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    while budget[0] > 0:
        budget[0] -= 1
        start = time.perf_counter()
        if start >= stop_at:
            return
        out["calls"][0] += 1
        first = None
        async with session.post(url, data=data, headers=headers) as response:
            if response.status != 200:
                await response.read()
                if start >= measure_from:
                    out["errors"].append(response.status)
                continue
            if mode == "unary":
                orjson.loads(await response.read())
            else:
                async for _line in response.content:
                    if first is None:
                        first = time.perf_counter()
        end = time.perf_counter()
        if start >= measure_from:
            out["latency_us"].append(int((end - start) * 1e6))
            if first is not None:
                out["ttfc_us"].append(int((first - start) * 1e6))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, list[int]] = {"latency_us": [], "ttfc_us": [], "errors": [], "calls": [0]}
    budget = [args.max_requests]
    begin = time.perf_counter()
    measure_from = begin + args.warmup
    stop_at = measure_from + args.duration
    if args.target.startswith("http"):
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            url = args.target.rstrip("/") + "/chat/completions"
            await asyncio.gather(
                *(
                    _http_worker(session, url, args.mode, args.model, args.key, stop_at, measure_from, budget, out)
                    for _ in range(args.concurrency)
                )
            )
    else:
        # Each channel its own TCP connection (channels of one process otherwise share one): with several, the
        # kernel spreads them over the workers of `gateway serve --workers N`.
        options = [("grpc.use_local_subchannel_pool", 1)] if args.connections > 1 else []
        channels = [grpc.aio.insecure_channel(args.target, options=options) for _ in range(args.connections)]
        try:
            stubs = [gateway_pb2_grpc.GatewayStub(channel) for channel in channels]
            metadata = (("authorization", f"Bearer {args.key}"),)
            await asyncio.gather(
                *(
                    _grpc_worker(
                        stubs[i % len(stubs)], args.mode, args.model, metadata, stop_at, measure_from, budget, out
                    )
                    for i in range(args.concurrency)
                )
            )
        finally:
            for channel in channels:
                await channel.close()
    window = min(time.perf_counter(), stop_at) - measure_from
    return {**out, "window_s": window}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--target",
        required=True,
        help="HOST:PORT for gRPC, or an http:// base URL (…/v1) of an OpenAI-format server: the upstream or the "
        "gateway's HTTP front door",
    )
    parser.add_argument("--mode", choices=["unary", "stream"], default="unary")
    parser.add_argument("--model", default="bench")
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--connections", type=int, default=1, help="gRPC connections the calls are spread over")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    args = parser.parse_args()
    result = uvloop.run(run(args))
    # A file, not stdout: the event loop may leave stdout non-blocking, and a full pipe would cut the result short.
    args.out.write_bytes(orjson.dumps(result))


if __name__ == "__main__":
    main()
