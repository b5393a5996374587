"""Deferred calls: what holding and grouping add to a call, and what they save on a mixed workload.

Everything runs in this one process, bounded in count and time: a gateway (full pipeline, OpenAI adapter, SQLite
state) against a local OpenAI-format upstream that answers after a fixed delay and, as OpenAI's automatic prefix
caching does, reports as cached the prompt tokens of a prefix an earlier answered request had (a request that
arrives before the first one with its prefix was answered gets no cache hit). The upstream is a stand-in, not
OpenAI: the savings are those of the prices and cache rule it emulates.

1. Overhead: the same calls undeferred and deferred with deferral.max_batch 1 (released as soon as held, so the
   figure is the deferral machinery - the database row, the detached task, the holder - and not a wait), one after
   the other at concurrency 1; medians of the round trip and the process CPU per call.
2. Savings: a mixed workload (calls sharing four long system prompts, calls with nothing to share, calls to a model
   whose cheaper price window begins a second into the run) sent all at once, deferred, then again undeferred
   against a fresh gateway and upstream; the cost of each run is read from the ledger (GetUsage).

    python -m benches.deferred            # about 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
from aiohttp import web
from llmgateway.v1 import admin_pb2, admin_pb2_grpc, gateway_pb2_grpc
from llmgateway.v1 import gateway_pb2 as pb

from gateway.config.loader import parse_config
from gateway.server.app import Gateway, build_gateway

KEY = "bench-deferred-admin-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
SYSTEM_TOKENS = 1500
"""Prompt tokens the upstream reports for a long shared system prompt (the rest of a prompt: 50)."""
UPSTREAM_DELAY_S = 0.05


class CachingUpstream:
    """OpenAI chat completions: answers after UPSTREAM_DELAY_S; a prefix counts as cached once a request with it
    has been answered."""

    def __init__(self) -> None:
        self._answered: set[str] = set()
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests += 1
        messages = body["messages"]
        prefix = orjson.dumps(messages[:-1]).decode()
        long_prefix = any(m["role"] == "system" and len(m["content"]) > 1000 for m in messages)
        cached = SYSTEM_TOKENS if long_prefix and prefix in self._answered else 0
        await asyncio.sleep(UPSTREAM_DELAY_S)
        self._answered.add(prefix)
        prompt = (SYSTEM_TOKENS if long_prefix else 0) + 50
        answer = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"},
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": 40,
                "total_tokens": prompt + 40,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
        return web.json_response(answer)


def config(url: str, *, max_batch: int, max_wait_s: float) -> str:
    return f"""
providers:
  - {{name: up, type: openai, base_url: '{url}', api_key_env: BENCH_DEFERRED_UPSTREAM_KEY}}
models:
  - name: gpt
    provider: up
    upstream_model: gpt-4o
    input_cost_per_mtok: 2.5
    output_cost_per_mtok: 10.0
    cached_input_cost_per_mtok: 1.25
  - name: nightly
    provider: up
    upstream_model: gpt-4o-mini
    input_cost_per_mtok: 0.6
    output_cost_per_mtok: 2.4
    prices: [{{hours: "16:30-00:30", timezone: UTC, input_cost_per_mtok: 0.3, output_cost_per_mtok: 1.2}}]
deferral: {{max_batch: {max_batch}, max_wait_s: {max_wait_s}, min_prefix_tokens: 1000}}
audit: {{flush_interval_ms: 10}}
"""


async def start(
    state: Path, *, max_batch: int, max_wait_s: float, clock: Callable[[], float]
) -> tuple[Gateway, grpc.aio.Channel, CachingUpstream, web.AppRunner]:
    upstream = CachingUpstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway = await build_gateway(
        parse_config(config(f"http://127.0.0.1:{port}/v1", max_batch=max_batch, max_wait_s=max_wait_s)),
        address="127.0.0.1:0",
        state_dir=state,
        metrics_address="",
        clock=clock,
    )
    await gateway.server.start()
    return gateway, grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}"), upstream, runner


async def stop(gateway: Gateway, channel: grpc.aio.Channel, runner: web.AppRunner) -> None:
    await channel.close()
    await gateway.stop(0)
    await runner.cleanup()


def request(model: str, text: str, *, system: str = "", defer: float | None = None) -> pb.ChatRequest:
    messages = [pb.Message(role="system", content=system)] if system else []
    messages.append(pb.Message(role="user", content=text))
    found = pb.ChatRequest(model=model, messages=messages, max_tokens=40)
    if defer is not None:
        found.defer_up_to_s = defer
    return found


async def overhead(calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        gateway, channel, _, runner = await start(Path(tmp), max_batch=1, max_wait_s=1.0, clock=time.time)
        stub = gateway_pb2_grpc.GatewayStub(channel)
        figures: dict[str, Any] = {}
        try:
            for _ in range(20):  # warm both paths
                await stub.Chat(request("gpt", "warm"), metadata=AUTH)
                await stub.Chat(request("gpt", "warm", defer=5.0), metadata=AUTH)
            for name, defer in (("undeferred", None), ("deferred", 5.0), ("undeferred again", None)):
                latencies = []
                cpu = time.process_time()
                for n in range(calls):
                    started = time.perf_counter()
                    await stub.Chat(request("gpt", f"call {n}", defer=defer), metadata=AUTH)
                    latencies.append(time.perf_counter() - started)
                figures[name] = {
                    "median_ms": 1000 * statistics.median(latencies),
                    "cpu_ms_per_call": 1000 * (time.process_time() - cpu) / calls,
                }
        finally:
            await stop(gateway, channel, runner)
    return figures


def workload() -> list[tuple[str, str, str]]:
    """(model, system prompt, user text): 120 calls sharing 4 long system prompts, 80 with none, 40 to `nightly`."""
    prompts = [
        f"You are reviewer number {i}. " + "Apply the house style guide to every sentence. " * 160 for i in range(4)
    ]
    calls = [("gpt", prompts[n % 4], f"document {n}") for n in range(120)]
    calls += [("gpt", "", f"short question {n}") for n in range(80)]
    calls += [("nightly", "", f"enrich record {n}") for n in range(40)]
    return calls


async def cost(deferred: bool) -> dict[str, float]:
    """The workload's cost from the ledger. The gateway's clock reads 16:29:59 UTC when the calls are sent: nightly's
    cheaper window begins a second later."""
    offset = [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        gateway, channel, upstream, runner = await start(
            Path(tmp), max_batch=32, max_wait_s=0.5, clock=lambda: time.time() + offset[0]
        )
        stub = gateway_pb2_grpc.GatewayStub(channel)
        admin = admin_pb2_grpc.AdminStub(channel)
        try:
            offset[0] = dt.datetime(2026, 6, 1, 16, 29, 59, tzinfo=dt.UTC).timestamp() - time.time()
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    stub.Chat(request(model, text, system=system, defer=5.0 if deferred else None), metadata=AUTH)
                    for model, system, text in workload()
                )
            )
            elapsed = time.perf_counter() - started
            await gateway.audit.flush()
            usage = await admin.GetUsage(admin_pb2.GetUsageRequest(group_by="model"), metadata=AUTH)
        finally:
            await stop(gateway, channel, runner)
    total = usage.total
    return {
        "cost_usd": total.cost_usd,
        "deferred_interactive_usd": total.deferred_interactive_usd,
        "cached_tokens": total.cached_tokens,
        "upstream_requests": upstream.requests,
        "seconds": elapsed,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=200, help="calls per path for the overhead (default 200)")
    args = parser.parse_args()
    os.environ.setdefault("GATEWAY_BOOTSTRAP_KEY", KEY)
    os.environ.setdefault("BENCH_DEFERRED_UPSTREAM_KEY", "sk-bench")
    figures = await overhead(min(args.calls, 2000))
    print("overhead, concurrency 1, max_batch 1 (no wait):")
    for name, row in figures.items():
        print(f"  {name:17} median {row['median_ms']:.2f} ms   cpu {row['cpu_ms_per_call']:.2f} ms/call")
    reference = statistics.mean([figures["undeferred"]["median_ms"], figures["undeferred again"]["median_ms"]])
    print(f"  deferred / undeferred median: {figures['deferred']['median_ms'] / reference:.2f}")
    held = await cost(deferred=True)
    at_once = await cost(deferred=False)
    print("mixed workload, 240 calls sent at once (ledger, GetUsage):")
    for name, row in (("deferred", held), ("undeferred", at_once)):
        print(
            f"  {name:10} ${row['cost_usd']:.6f}  cached tokens {row['cached_tokens']:>7}  "
            f"upstream requests {row['upstream_requests']}  {row['seconds']:.2f} s"
        )
    print(f"  deferred / undeferred cost: {held['cost_usd'] / at_once['cost_usd']:.3f}")
    print(f"  the ledger's own at-once figure for the deferred run: ${held['deferred_interactive_usd']:.6f}")


if __name__ == "__main__":
    asyncio.run(main())
