"""What a stream costs the event loop: the gateway's ChatStream handler against the bare forwarder's, in one process,
without gRPC (which costs both the same).

Both read the same local upstream's server-sent events over aiohttp. Each round drives each handler with streams of
1 word and of `--chunks` words; the difference, divided by the extra words, is the CPU one chunk costs, and the
1-word stream's CPU is what opening and closing a stream costs. With `--interval` the long streams' words come one
at a time, as a model writes them, so each chunk also pays for its own wake-up. Medians over alternating rounds;
bounded by `--rounds` x `--streams`; everything on 127.0.0.1.

    python -m benches.stream_cpu
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvloop
from llmgateway.v1 import gateway_pb2 as pb

from benches.load import BENCH_ADMIN_KEY, BENCH_KEY, BENCH_KEY_ENV, free_port, gateway_config, process
from benches.pipeline_cpu import Context
from benches.reference_servers import Forwarder
from gateway.config import load_config
from gateway.server.app import build_gateway

Handler = Callable[[pb.ChatRequest, Any], AsyncIterator[pb.ChatChunk]]
REQUEST = pb.ChatRequest(
    model="bench", messages=[pb.Message(role="user", content="Say hello in one short sentence, please.")]
)


async def drive(handler: Handler, streams: int, concurrency: int) -> int:
    """Runs `streams` streams, `concurrency` at a time; returns the chunks they yielded."""
    context = Context()
    chunks = 0

    async def client(count: int) -> None:
        nonlocal chunks
        for _ in range(count):
            async for _chunk in handler(REQUEST, context):
                chunks += 1

    await asyncio.gather(*(client(streams // concurrency) for _ in range(concurrency)))
    return chunks


async def measure(args: argparse.Namespace) -> None:
    short_port, long_port = free_port(), free_port()
    upstream = ("-m", "benches.upstream", "--port")
    with (
        tempfile.TemporaryDirectory() as state,
        process(*upstream, str(short_port), "--chunks", "1", port=short_port),
        process(*upstream, str(long_port), "--chunks", str(args.chunks), f"--interval={args.interval}", port=long_port),
    ):
        os.environ["GATEWAY_BOOTSTRAP_KEY"] = BENCH_ADMIN_KEY
        os.environ[BENCH_KEY_ENV] = BENCH_KEY
        os.environ["BENCH_UPSTREAM_KEY"] = "sk-bench"
        short_url, long_url = f"http://127.0.0.1:{short_port}/v1", f"http://127.0.0.1:{long_port}/v1"
        # The config's "bench" model calls the first upstream, "flaky" the second (never failing here).
        config_file = Path(state) / "bench.yaml"
        config_file.write_text(gateway_config(short_url, long_url) + args.config_extra + "\n")
        gateway = await build_gateway(
            load_config(str(config_file)), address="127.0.0.1:0", state_dir=Path(state), metrics_address="127.0.0.1:0"
        )
        servicer = gateway.servicer
        forwarders = {"short": Forwarder(short_url), "long": Forwarder(long_url)}

        def gateway_handler(model: str) -> Handler:
            def handler(request: pb.ChatRequest, context: Any) -> AsyncIterator[pb.ChatChunk]:
                request = pb.ChatRequest(model=model, messages=request.messages)
                return servicer.ChatStream(request, context)  # type: ignore[arg-type]

            return handler

        handlers: dict[tuple[str, str], Handler] = {
            ("bare forwarder", "short"): forwarders["short"].ChatStream,
            ("bare forwarder", "long"): forwarders["long"].ChatStream,
            ("gateway", "short"): gateway_handler("bench"),
            ("gateway", "long"): gateway_handler("flaky"),
        }
        for handler in handlers.values():
            await drive(handler, args.streams // 4, args.concurrency)  # warm: connections, caches
        cpu: dict[tuple[str, str], list[float]] = {key: [] for key in handlers}
        chunks: dict[tuple[str, str], int] = {}
        for _ in range(args.rounds):
            for key, handler in handlers.items():
                started = time.process_time()
                chunks[key] = await drive(handler, args.streams, args.concurrency)
                if key[0] == "gateway":
                    await gateway.audit.flush()  # the round's records are written within it
                cpu[key].append((time.process_time() - started) / args.streams * 1e6)
        for forwarder in forwarders.values():
            await forwarder.close()
        await gateway.stop(1.0)
    head = f"| handler, c={args.concurrency}, {args.rounds} x {args.streams:,} streams | CPU µs per stream of 1 word"
    print(f"{head} | per stream of {args.chunks} words | per extra chunk |")
    print("| --- | --- | --- | --- |")
    for name in ("bare forwarder", "gateway"):
        short, long = statistics.median(cpu[name, "short"]), statistics.median(cpu[name, "long"])
        extra = (chunks[name, "long"] - chunks[name, "short"]) / args.streams
        print(f"| {name} | {short:.0f} | {long:.0f} | {(long - short) / extra:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=800, help="streams per round and handler")
    parser.add_argument("--chunks", type=int, default=41, help="words of the long streams")
    parser.add_argument("--concurrency", type=int, default=16, help="streams open at once")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds between the long streams' words: 0 sends them in one write"
    )
    parser.add_argument("--config-extra", default="", help="YAML appended to the benchmark's gateway config")
    uvloop.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
