"""What a registered method (a queue of its own in grpc.aio, server/registration.py) costs every call the server
takes: server CPU per quick Chat call of a grpc.aio echo server registered as the gateway registers its services,
against the same server with every method on the generic queue only, in alternating rounds.

    python -m benches.accept_queues                  # 5 rounds x 3,000 calls at c=16 per variant (~1 min)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import grpc
import uvloop
from llmgateway.v1 import gateway_pb2_grpc

from benches.reference_servers import Echo
from gateway.config.schema import ServerConfig
from gateway.server import registration
from gateway.server.app import server_options

CLIENT = """
import asyncio, sys, grpc, uvloop
from llmgateway.v1 import gateway_pb2 as pb, gateway_pb2_grpc

async def main(target, calls, concurrency):
    async with grpc.aio.insecure_channel(target) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        request = pb.ChatRequest(model="echo", messages=[pb.Message(role="user", content="hi")])
        await stub.Chat(request)
        async def worker(n):
            for _ in range(n):
                await stub.Chat(request)
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))

uvloop.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"""


async def round_cpu_us(separate: frozenset[tuple[str, str]], calls: int, concurrency: int) -> float:
    """Server CPU per call (all of this process's threads: gRPC's and the event loop's) over one round."""
    registration.SEPARATE_QUEUES = separate
    server = grpc.aio.server(options=server_options(ServerConfig()))
    gateway_pb2_grpc.add_GatewayServicer_to_server(Echo(), registration.generic_registrar(server))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, f"127.0.0.1:{port}", str(calls), str(concurrency)
        )
        before = time.process_time()
        await asyncio.wait_for(client.wait(), 120)
        return (time.process_time() - before) / calls * 1e6
    finally:
        await server.stop(0)


async def run(rounds: int, calls: int, concurrency: int) -> dict[str, list[float]]:
    variants = {"generic queue only": frozenset(), "ChatStream on its own queue": registration.SEPARATE_QUEUES}
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, separate in variants.items():
            results[name].append(await round_cpu_us(separate, calls, concurrency))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    results = uvloop.run(run(args.rounds, args.calls, args.concurrency))
    load = os.getloadavg()[0]
    print(f"{args.rounds} rounds x {args.calls:,} calls at c={args.concurrency}, load average {load:.1f}")
    print("| echo server | server CPU µs per Chat call (median) | each round |")
    print("| --- | --- | --- |")
    for name, values in results.items():
        rounds = " / ".join(f"{v:.0f}" for v in values)
        print(f"| {name} | {statistics.median(values):.0f} | {rounds} |")


if __name__ == "__main__":
    main()
