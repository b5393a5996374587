"""What sharing a key's limits and budgets through Redis adds to a call: admission and settlement (the limits stage's
two hooks, as the call waits for them: settlement goes to Redis in the background) at concurrency 1, for a key with
requests and tokens per minute and calls in flight, alone and with a team budget, against the same key kept in this
process, in one run and on one local redis-server (started here, loopback).

    python -m benches.shared_limits            # 2,000 calls per backend, medians of 5 rounds

Bounded: `--calls` per round, `--rounds` rounds; everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable

import uvloop

from gateway.ledger.budgets import BudgetBook
from gateway.records.governance import Budget, BudgetScope, KeyLimits, KeyRecord, Period
from gateway.state.admission import LocalLimits, SharedLimits, Ticket
from gateway.state.key_limits import KeyLimiter
from gateway.state.redis import RedisState
from tests.server.process import free_port
from tests.store.redis import start_redis

LIMITS = KeyLimits(rpm=10**9, tpm=10**12, max_concurrent=10**6)
KEY = KeyRecord(id="bench", prefix="", secret_hash="0" * 64, team="bench-team", limits=LIMITS)
BUDGETED = KeyRecord(id="bench-budgeted", prefix="", secret_hash="1" * 64, team="bench-budget", limits=LIMITS)


async def no_spend(scope: BudgetScope, subject: str, period: Period) -> float:
    return 0.0


async def measure(
    calls: int,
    admit: Callable[[str], Awaitable[Ticket] | Ticket],
    settle: Callable[[Ticket], object],
    between: Callable[[], Awaitable[None]],
) -> float:
    """Median µs a call waits for its admission and settlement, one call at a time; `between` runs untimed after
    each (the settlement Redis gets in the background lands there, as it would while the answer goes out)."""
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        ticket = admit(f"call-{i}")
        if not isinstance(ticket, Ticket):
            ticket = await ticket
        settle(ticket)
        samples.append((time.perf_counter() - started) * 1e6)
        await between()
    return statistics.median(samples)


async def nothing() -> None:
    return None


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    server = start_redis(port)
    try:
        budgets = BudgetBook()
        budgets.set_budget(Budget(BudgetScope.TEAM, BUDGETED.team, Period.DAY, hard_usd=10**9))
        local = LocalLimits(KeyLimiter(), budgets)
        backends: dict[str, LocalLimits | SharedLimits] = {"in-process": local}
        states = []
        for mode in ("exact", "lease"):
            state = RedisState(f"redis://127.0.0.1:{port}/0", timeout_s=1.0)
            states.append(state)
            backends[f"redis, {mode}"] = SharedLimits(
                state,
                LocalLimits(KeyLimiter(), budgets),
                no_spend,
                mode=mode,
                lease_size=args.lease,  # type: ignore[arg-type]
                fail_open=True,  # the config's default; Redis stays up here
            )
        results: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for name, backend in backends.items():
                for label, key in (("limits", KEY), ("limits and a budget", BUDGETED)):
                    results.setdefault(f"{name}: {label}", []).append(
                        await measure(
                            args.calls,
                            lambda call_id, b=backend, k=key: b.admit(call_id, k, 100, 0.0001),  # type: ignore[misc]
                            lambda ticket, b=backend: b.settle(ticket, 90, 0.00009),  # type: ignore[misc]
                            backend.drain if isinstance(backend, SharedLimits) else nothing,
                        )
                    )
        # The floor: one round trip of a script that does nothing, on the same client settings.
        floor_state = RedisState(f"redis://127.0.0.1:{port}/0", timeout_s=1.0)
        trivial = floor_state._redis.register_script("return 0")

        async def round_trip(call_id: str) -> Ticket:
            await trivial(keys=["floor"], args=[call_id])
            return Ticket(call_id, KEY)

        results["a Redis round trip (reference): limits"] = [
            await measure(args.calls, round_trip, lambda ticket: None, nothing) for _ in range(args.rounds)
        ]
        states.append(floor_state)
        for state in states:
            await state.close()
    finally:
        server.kill()
        server.wait()
    print(f"| c=1, {args.rounds} x {args.calls:,} calls | admit + settle µs (median) | added over in-process |")
    print("| --- | --- | --- |")
    for name, values in results.items():
        base = statistics.median(results["in-process: " + name.split(": ", 1)[1]])
        value = statistics.median(values)
        print(f"| {name} | {value:.1f} | {value - base:+.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lease", type=int, default=20)
    uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
