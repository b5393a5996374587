"""SharedLimits against a real Redis, without a server around it: a key's rates, calls in flight and budgets taken
and given back, across two processes' worth of state (exact and lease modes), and what a Redis that cannot be reached
means (fail open on each process's share, fail closed, settlements replayed once it answers).

The gRPC tests in test_shared_limits.py hold the same promises end to end; these reach the edges (a call landing
exactly on a cap, a lease given back, the fallback window) in milliseconds, where two gateways take seconds."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from gateway.errors import RateLimited, Unavailable
from gateway.ledger.budgets import BudgetBook
from gateway.observe.metrics import GatewayMetrics
from gateway.records.governance import Budget, BudgetScope, KeyLimits, KeyRecord, Period
from gateway.state.admission import (
    BATCH_LEASE_S,
    RETRY_AFTER_DOWN_S,
    LocalLimits,
    PendingEstimate,
    SharedLimits,
    Ticket,
)
from gateway.state.key_limits import KeyLimiter
from gateway.state.redis import RedisState
from tests.server.process import free_port
from tests.store.redis import RedisServer, start_redis

KEY = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h1", team="shop")
TEAM_DAY = Budget(BudgetScope.TEAM, "shop", Period.DAY, hard_usd=1.0)
KEY_MONTH = Budget(BudgetScope.KEY, "key_1", Period.MONTH, hard_usd=2.0)


def limited(**limits: int) -> KeyRecord:
    return dataclasses.replace(KEY, limits=KeyLimits(**limits))


class Ledger:
    """What the ledger holds per budget subject and period, and which of them the limits asked for."""

    def __init__(self, spent: dict[tuple[BudgetScope, str, Period], float] | None = None) -> None:
        self.spent = spent or {}
        self.asked: list[tuple[BudgetScope, str, Period]] = []

    async def __call__(self, scope: BudgetScope, subject: str, period: Period) -> float:
        self.asked.append((scope, subject, period))
        return self.spent.get((scope, subject, period), 0.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Process:
    """One gateway process's limits: its book, its fallback clock and its metrics."""

    limits: SharedLimits
    book: BudgetBook
    state: RedisState
    clock: Clock
    metrics: GatewayMetrics
    registry: CollectorRegistry

    def state_up(self) -> float | None:
        return self.registry.get_sample_value("llm_gateway_shared_state_up")

    async def admit(self, key: KeyRecord = KEY, tokens: int = 0, estimate: float | None = None) -> Ticket:
        return await self.limits.admit(f"call-{id(object())}", key, tokens, estimate)

    async def settle(self, ticket: Ticket, used_tokens: int = 0, cost: float = 0.0) -> None:
        self.limits.settle(ticket, used_tokens, cost)
        await self.limits.drain()


class Processes:
    def __init__(self) -> None:
        self.made: list[Process] = []

    def make(
        self,
        url: str,
        *budgets: Budget,
        mode: str = "exact",
        lease_size: int = 20,
        fail_open: bool = True,
        ledger: Ledger | None = None,
        timeout_s: float = 5.0,
    ) -> Process:
        state = RedisState(url, timeout_s=timeout_s)
        book = BudgetBook()
        for budget in budgets:
            book.set_budget(budget)
        clock = Clock()
        registry = CollectorRegistry()
        metrics = GatewayMetrics(registry)
        limits = SharedLimits(
            state,
            LocalLimits(KeyLimiter(), book),
            ledger or Ledger(),
            mode=mode,  # type: ignore[arg-type]
            lease_size=lease_size,
            fail_open=fail_open,
            metrics=metrics,
            clock=clock,
        )
        made = Process(limits, book, state, clock, metrics, registry)
        self.made.append(made)
        return made


@pytest.fixture
async def processes() -> AsyncIterator[Processes]:
    made = Processes()
    yield made
    for process in made.made:
        await process.limits.drain()
        await process.state.close()


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list[RedisServer]]]:
    """A port for a Redis the test starts and stops itself (nothing listens there at first)."""
    port = free_port()
    servers: list[RedisServer] = []
    yield port, servers
    for server in servers:
        server.process.kill()
        server.process.wait()


def start(own: tuple[int, list[RedisServer]]) -> RedisServer:
    port, servers = own
    server = RedisServer(start_redis(port), port)
    servers.append(server)
    return server


def stop(server: RedisServer) -> None:
    server.process.kill()
    server.process.wait()


async def refused(
    process: Process, key: KeyRecord = KEY, tokens: int = 0, estimate: float | None = None
) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        await process.admit(key, tokens, estimate)
    return caught.value


# --- exact mode ------------------------------------------------------------------------------------------------------


def test_a_local_budget_refusal_gives_back_every_token_the_call_took() -> None:
    book = BudgetBook()
    book.set_budget(KEY_MONTH)
    limits = LocalLimits(KeyLimiter(), book)
    key = limited(tpm=10)  # a token comes back every 6 s: none within the test
    with pytest.raises(RateLimited) as caught:
        limits.admit("over", key, 10, 2.5)
    assert caught.value.reason == "BUDGET_EXCEEDED"
    limits.admit("within", key, 10, 0.5)  # all 10 tokens again


async def test_a_key_without_limits_or_budgets_never_asks_redis(processes: Processes) -> None:
    """Nothing listens at the address, and the limits fail closed: a call that has nothing to take still passes."""
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", TEAM_DAY, fail_open=False)
    ticket = await process.admit(KEY, tokens=100)  # governed by a budget, but estimating nothing
    await process.settle(ticket, 100, 0.5)
    assert ticket.accounts == []
    with pytest.raises(Unavailable):
        await process.admit(limited(rpm=10))


async def test_a_keys_rate_holds_across_processes_and_says_when_to_retry(
    redis_server: RedisServer, processes: Processes
) -> None:
    one, two = processes.make(redis_server.url), processes.make(redis_server.url)
    key = limited(rpm=3)
    for process in (one, two, one):
        await process.admit(key)
    refusal = await refused(two, key)
    assert refusal.reason == "KEY_RATE_LIMITED"
    assert "key key_1 is over its rate limit (3 requests/min); retry in " in refusal.message
    assert refusal.retry_after is not None
    assert 0 < refusal.retry_after <= 20  # one request's interval at 3 a minute


async def test_tokens_taken_are_corrected_to_the_tokens_used(redis_server: RedisServer, processes: Processes) -> None:
    process = processes.make(redis_server.url)
    key = limited(tpm=100)
    first = await process.admit(key, tokens=60)
    refusal = await refused(process, key, tokens=60)
    assert refusal.reason == "KEY_RATE_LIMITED"
    assert "(100 tokens/min)" in refusal.message
    await process.settle(first, used_tokens=10)  # 50 of the 60 given back
    await process.admit(key, tokens=60)


async def test_calls_in_flight_hold_across_processes_until_settled(
    redis_server: RedisServer, processes: Processes
) -> None:
    one, two = processes.make(redis_server.url), processes.make(redis_server.url)
    key = limited(max_concurrent=2)
    first = await one.admit(key)
    await two.admit(key)
    refusal = await refused(one, key)
    assert refusal.reason == "KEY_CONCURRENCY_LIMITED"
    assert refusal.message == "key key_1 already has 2 calls in flight, its limit"
    assert refusal.retry_after == pytest.approx(0.05)
    await one.settle(first)
    await two.admit(key)


async def test_a_hard_cap_starts_from_the_ledger_reserves_each_estimate_and_admits_a_call_landing_exactly_on_it(
    redis_server: RedisServer, processes: Processes
) -> None:
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 0.25})
    one = processes.make(redis_server.url, TEAM_DAY, KEY_MONTH, ledger=ledger)
    two = processes.make(redis_server.url, TEAM_DAY, KEY_MONTH, ledger=ledger)
    first = await one.admit(estimate=0.5)
    assert sorted(ledger.asked) == sorted(
        [(BudgetScope.TEAM, "shop", Period.DAY), (BudgetScope.KEY, "key_1", Period.MONTH)]
    )
    assert one.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.25
    assert one.book.remaining(BudgetScope.TEAM, "shop") == 0.25  # 1.00 - 0.25 spent - 0.50 in flight
    assert one.book.remaining(BudgetScope.KEY, "key_1") == 1.5

    refusal = await refused(two, estimate=0.5)
    assert refusal.reason == "BUDGET_EXCEEDED"
    assert refusal.message.startswith(
        "the daily budget of team shop ($1.00) would be exceeded: $0.2500 spent, $0.5000 in flight, this call up to "
        "$0.5000"
    )
    end_of_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
    assert refusal.retry_after is not None
    assert end_of_day - datetime.now(UTC).timestamp() - 5 <= refusal.retry_after <= 86_400
    assert len(ledger.asked) == 2  # the second process found the counters the first made

    await one.settle(first, cost=0.125)
    assert one.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.375
    assert one.book.remaining(BudgetScope.TEAM, "shop") == 0.625
    last = await two.admit(estimate=0.625)  # lands exactly on the cap
    assert two.book.remaining(BudgetScope.TEAM, "shop") == 0.0
    await refused(one, estimate=0.001)
    await two.settle(last, cost=0.5)
    assert two.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.875
    assert two.book.spent(BudgetScope.KEY, "key_1", Period.MONTH) == 0.625
    assert two.book.remaining(BudgetScope.KEY, "key_1") == 1.375


async def test_a_settlement_updates_each_of_the_calls_accounts_with_its_own_counters(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, TEAM_DAY, KEY_MONTH)
    mine = await process.admit(KEY, estimate=0.5)
    teammate = dataclasses.replace(KEY, id="key_2")
    await process.admit(teammate, estimate=0.25)  # in flight on the team's account only
    await process.admit(KEY, estimate=0.125)
    assert process.book.remaining(BudgetScope.KEY, "key_1") == 1.375  # 2.00 - 0.625 in flight
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.125  # 1.00 - 0.875 in flight
    await process.settle(mine, cost=0.125)
    assert process.book.remaining(BudgetScope.KEY, "key_1") == 1.75  # 2.00 - 0.125 - 0.125 in flight
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.5  # 1.00 - 0.125 - 0.375 in flight


async def test_a_settlement_never_makes_an_account_redis_lost_again(
    redis_server: RedisServer, processes: Processes
) -> None:
    """An account gone while its call ran (evicted, or past its keep time) stays gone: made again by the settlement it
    would hold a negative reservation and this call's cost alone, without an expiry, and the next admission would take
    it for the period's spend; instead the next admission loads the spend from the ledger."""
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 0.25})
    process = processes.make(redis_server.url, TEAM_DAY, ledger=ledger)
    call = await process.admit(estimate=0.5)
    client = redis_server.client()
    [account] = [name for name in client.keys("*") if b":b:team:shop:day:" in name]
    client.delete(account)
    await process.settle(call, cost=0.5)
    assert not client.exists(account)
    assert all(client.ttl(name) != -1 for name in client.keys("*")), "every key the settlement left expires"

    ledger.spent[(BudgetScope.TEAM, "shop", Period.DAY)] = 0.75  # the ledger has the call
    assert (await refused(process, estimate=0.5)).reason == "BUDGET_EXCEEDED", "$0.75 spent: $0.50 more is over"
    assert ledger.asked.count((BudgetScope.TEAM, "shop", Period.DAY)) == 2
    await process.admit(estimate=0.25)
    assert process.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.75


def reservations(redis_server: RedisServer) -> tuple[bytes, list[tuple[bytes, float]]]:
    """The team's zset of open reservations, by expiry."""
    client = redis_server.client()
    [name] = [name for name in client.keys("*") if name.endswith(b"resv")]
    return name, client.zrange(name, 0, -1, withscores=True)


async def test_a_reservation_whose_process_died_is_given_back_by_the_next_admission(
    redis_server: RedisServer, processes: Processes
) -> None:
    """A process that dies mid-call never settles: once its reservation's lease has passed, the next admission on
    any process gives it back, so a hard cap is not held shut by a dead process's estimate."""
    dead, alive = processes.make(redis_server.url, TEAM_DAY), processes.make(redis_server.url, TEAM_DAY)
    await dead.admit(estimate=0.5)
    still_leased = await alive.admit(estimate=0.25)
    assert alive.book.remaining(BudgetScope.TEAM, "shop") == 0.25, "within its lease it is kept: $0.75 in flight"
    await alive.settle(still_leased)

    name, [(call_id, _)] = reservations(redis_server)
    redis_server.client().zadd(name, {call_id: 0}, xx=True)  # its lease ran out long ago
    await alive.admit(estimate=0.75)  # 0.5 + 0.75 would be over the $1.00 cap
    assert alive.book.remaining(BudgetScope.TEAM, "shop") == 0.25, "only this call's $0.75 in flight"
    assert [entry for entry, _ in reservations(redis_server)[1]] != [call_id]


async def test_reaping_a_dead_process_reservation_never_makes_an_account_redis_lost_again(
    redis_server: RedisServer, processes: Processes
) -> None:
    """As for a settlement: the reaper gives back only to an account that still exists, so the next admission loads
    the period's spend from the ledger instead of trusting a remade account with a negative reservation."""
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 0.25})
    dead = processes.make(redis_server.url, TEAM_DAY, ledger=ledger)
    alive = processes.make(redis_server.url, TEAM_DAY, ledger=ledger)
    await dead.admit(estimate=0.5)
    client = redis_server.client()
    [account] = [name for name in client.keys("*") if b":b:team:shop:day:" in name]
    client.delete(account)
    name, [(call_id, _)] = reservations(redis_server)
    client.zadd(name, {call_id: 0}, xx=True)

    ledger.spent[(BudgetScope.TEAM, "shop", Period.DAY)] = 0.5
    await alive.admit(estimate=0.25)
    assert alive.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.5, "the spend came from the ledger"
    assert alive.book.remaining(BudgetScope.TEAM, "shop") == 0.25, "$0.25 in flight: no negative reservation left"
    assert (await refused(alive, estimate=0.5)).reason == "BUDGET_EXCEEDED"


async def test_a_key_without_a_token_rate_is_not_limited_by_tokens(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url)
    key = limited(rpm=10)
    for _ in range(3):
        await process.admit(key, tokens=100_000)


async def test_every_key_of_a_team_shares_its_hash_tag_and_accounts_expire_a_day_after_their_period(
    redis_server: RedisServer, processes: Processes
) -> None:
    """Redis Cluster runs a script only on keys of one slot: every key of a call carries the team's tag."""
    process = processes.make(redis_server.url, TEAM_DAY)
    await process.admit(limited(rpm=10, tpm=1000, max_concurrent=5), tokens=10, estimate=0.5)
    client = redis_server.client()
    names = [name.decode() for name in client.keys("*")]
    assert names
    assert all(name.startswith("gw:{t:shop}:") for name in names)
    [account] = [name for name in names if ":b:team:shop:day:" in name]
    end_of_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
    left = end_of_day - datetime.now(UTC).timestamp()
    assert left + 86_400 - 5 <= client.ttl(account) <= left + 86_400 + 5


async def test_a_soft_cap_alone_refuses_nothing_and_downgrades_once_passed(
    redis_server: RedisServer, processes: Processes
) -> None:
    soft = Budget(BudgetScope.TEAM, "shop", Period.DAY, soft_usd=0.5, downgrade_to="cheap")
    process = processes.make(redis_server.url, soft, fail_open=False)
    assert process.book.downgrade(KEY) is None
    await process.admit(limited(rpm=10), estimate=2.0)
    assert process.book.downgrade(KEY) == "cheap"


@pytest.mark.parametrize("mode", ["exact", "lease"])
async def test_a_call_estimated_at_nothing_passes_a_cap_with_room_left(
    redis_server: RedisServer, processes: Processes, mode: str
) -> None:
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 0.5})
    process = processes.make(redis_server.url, TEAM_DAY, mode=mode, ledger=ledger)
    await process.admit(limited(rpm=10), estimate=0.0)


async def test_a_budget_refusal_takes_none_of_the_keys_limits(redis_server: RedisServer, processes: Processes) -> None:
    process = processes.make(redis_server.url, TEAM_DAY)
    key = limited(rpm=1, max_concurrent=1)
    await refused(process, key, estimate=2.0)
    ticket = await process.admit(key, estimate=0.5)  # the refused call took no request and no slot
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.5
    await process.settle(ticket, cost=0.25)
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.75


# --- lease mode ------------------------------------------------------------------------------------------------------


async def test_leases_hold_a_rate_across_processes_each_serving_its_lease_locally(
    redis_server: RedisServer, processes: Processes
) -> None:
    one = processes.make(redis_server.url, mode="lease", lease_size=4)
    two = processes.make(redis_server.url, mode="lease", lease_size=4)
    key = limited(rpm=8)
    for _ in range(4):
        await one.admit(key)
    for _ in range(4):
        await two.admit(key)
    for process in (one, two):
        refusal = await refused(process, key)
        assert refusal.reason == "KEY_RATE_LIMITED"


async def test_a_lease_of_tokens_is_corrected_to_the_tokens_used(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=2)
    key = limited(tpm=100)
    first = await process.admit(key, tokens=50)  # leases 100 tokens: the whole minute
    await process.settle(first, used_tokens=10)  # 40 back into this process's lease
    await process.admit(key, tokens=50)
    await process.admit(key, tokens=40)
    refusal = await refused(process, key, tokens=50)
    assert refusal.reason == "KEY_RATE_LIMITED"


async def test_a_call_refused_for_calls_in_flight_gives_its_request_back_to_the_lease(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=2)
    key = limited(rpm=2, max_concurrent=1)
    first = await process.admit(key)  # leases both requests of the minute
    refusal = await refused(process, key)
    assert refusal.reason == "KEY_CONCURRENCY_LIMITED"
    await process.settle(first)
    second = await process.admit(key)  # the refused call's request, given back
    await process.settle(second)
    assert (await refused(process, key)).reason == "KEY_RATE_LIMITED"


async def test_a_refused_call_gives_back_exactly_the_request_and_tokens_it_took_from_the_lease(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=4)
    key = limited(rpm=4, tpm=100, max_concurrent=1)
    first = await process.admit(key, tokens=25)  # leases the minute: 4 requests, 100 tokens
    assert (await refused(process, key, tokens=25)).reason == "KEY_CONCURRENCY_LIMITED"
    await process.settle(first, used_tokens=25)
    for _ in range(3):  # what the refused call took is back: 3 requests and 75 tokens, with no round trip
        await process.settle(await process.admit(key, tokens=25), used_tokens=25)
    assert (await refused(process, key, tokens=25)).reason == "KEY_RATE_LIMITED"


async def test_a_lease_without_a_request_rate_gives_back_no_request(
    redis_server: RedisServer, processes: Processes
) -> None:
    """A key that gains a request rate later finds no request in its lease that it never took."""
    leased = processes.make(redis_server.url, mode="lease", lease_size=4)
    exact = processes.make(redis_server.url)
    before = limited(tpm=100, max_concurrent=1)
    first = await leased.admit(before, tokens=10)
    assert (await refused(leased, before, tokens=10)).reason == "KEY_CONCURRENCY_LIMITED"
    await leased.settle(first, used_tokens=10)
    after = limited(rpm=1, tpm=100, max_concurrent=1)
    await exact.admit(after)  # the minute's only request, taken by another process
    assert (await refused(leased, after, tokens=10)).reason == "KEY_RATE_LIMITED"


async def test_a_lease_serves_exactly_the_tokens_it_holds_and_refills_for_the_next_token(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=4)
    key = limited(tpm=100)
    for _ in range(4):  # one lease of the minute's 100 tokens, 25 a call
        await process.settle(await process.admit(key, tokens=25), used_tokens=25)
    assert (await refused(process, key, tokens=1)).reason == "KEY_RATE_LIMITED"  # spent to zero: one more token refills


async def test_a_call_taking_no_tokens_needs_none_from_a_lease_in_debt(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=2)
    key = limited(tpm=100)
    first = await process.admit(key, tokens=50)  # leases the minute's 100 tokens
    await process.settle(first, used_tokens=150)  # the provider billed more than the take: the lease owes 50
    await process.settle(await process.admit(key, tokens=0))


async def test_a_key_that_gains_a_token_rate_finds_no_tokens_in_its_lease_it_never_took(
    redis_server: RedisServer, processes: Processes
) -> None:
    leased = processes.make(redis_server.url, mode="lease", lease_size=4)
    exact = processes.make(redis_server.url)
    for _ in range(2):
        await leased.settle(await leased.admit(limited(rpm=10), tokens=50), used_tokens=0)
    after = limited(rpm=10, tpm=100)
    await exact.admit(after, tokens=100)  # the minute's tokens, taken by another process
    assert (await refused(leased, after, tokens=1)).reason == "KEY_RATE_LIMITED"


async def test_a_refill_of_tokens_alone_takes_no_requests_and_keeps_those_left(
    redis_server: RedisServer, processes: Processes
) -> None:
    leased, exact = processes.make(redis_server.url, mode="lease", lease_size=4), processes.make(redis_server.url)
    key = limited(rpm=8, tpm=1000)
    first = await leased.admit(key, tokens=60)  # leases 4 requests (half the minute's) and 240 tokens
    await leased.settle(first, used_tokens=240)  # the provider billed more: the lease's tokens are spent
    await leased.admit(key, tokens=60)  # a refill of tokens only
    await exact.admit(key)  # so the other half of the minute's requests is still in Redis
    await leased.admit(key, tokens=60)  # and the lease still holds the two requests it had
    await leased.admit(key, tokens=60)


async def test_a_refill_of_requests_alone_takes_no_tokens(redis_server: RedisServer, processes: Processes) -> None:
    leased, exact = processes.make(redis_server.url, mode="lease", lease_size=2), processes.make(redis_server.url)
    key = limited(rpm=8, tpm=30)
    await leased.admit(key, tokens=2)  # leases 2 requests and 4 tokens
    await leased.admit(key, tokens=0)
    await leased.admit(key, tokens=2)  # the lease still holds its tokens: a refill of requests only
    await exact.admit(key, tokens=26)  # the minute's other 26 tokens are still in Redis


async def test_a_refill_adds_to_what_the_lease_still_holds(redis_server: RedisServer, processes: Processes) -> None:
    process = processes.make(redis_server.url, mode="lease", lease_size=1)
    key = limited(tpm=100)
    first = await process.admit(key, tokens=40)  # leases 40 tokens
    await process.settle(first, used_tokens=20)  # 20 back in the lease
    await process.admit(key, tokens=30)  # refills 30: 50 in the lease, 20 left after this call
    await process.admit(key, tokens=20)  # from the lease
    await process.admit(key, tokens=15)  # refills 15: 85 of the minute's 100 taken from Redis


async def test_a_leased_calls_settlement_moves_no_shared_token_rate(
    redis_server: RedisServer, processes: Processes
) -> None:
    """The lease already took the call's tokens from Redis; settling its budget must not count them again."""
    leased = processes.make(redis_server.url, TEAM_DAY, mode="lease", lease_size=1)
    exact = processes.make(redis_server.url, TEAM_DAY)
    key = limited(tpm=100)
    ticket = await leased.admit(key, tokens=50, estimate=0.25)  # 50 tokens leased, 0.25 reserved
    await leased.settle(ticket, used_tokens=50, cost=0.25)
    assert leased.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.25
    await exact.admit(key, tokens=50)  # the minute's other 50 tokens


async def test_leased_calls_make_no_round_trip_to_redis_until_their_lease_runs_out(
    own_redis: tuple[int, list[RedisServer]], processes: Processes
) -> None:
    port, _ = own_redis
    server = start(own_redis)
    process = processes.make(f"redis://127.0.0.1:{port}/0", mode="lease", lease_size=5, fail_open=False)
    key = limited(rpm=10)
    held = [await process.admit(key, estimate=0.01)]  # takes the lease; no budget governs the key
    stop(server)
    held += [await process.admit(key, estimate=0.01) for _ in range(4)]
    with pytest.raises(Unavailable):
        await process.admit(key, estimate=0.01)  # the lease is spent: Redis is needed again
    for ticket in held:
        await process.settle(ticket)


@pytest.mark.parametrize("mode", ["exact", "lease"])
async def test_a_cap_already_passed_refuses_even_a_call_estimated_at_nothing(
    redis_server: RedisServer, processes: Processes, mode: str
) -> None:
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 1.5})  # calls that cost more than their estimates
    process = processes.make(redis_server.url, TEAM_DAY, mode=mode, ledger=ledger)
    refusal = await refused(process, limited(rpm=10), estimate=0.0)
    assert refusal.reason == "BUDGET_EXCEEDED"
    assert "$1.5000 spent" in refusal.message


async def test_leased_calls_reserve_budgets_exactly_and_a_refusal_gives_the_lease_back(
    redis_server: RedisServer, processes: Processes
) -> None:
    process = processes.make(redis_server.url, TEAM_DAY, mode="lease", lease_size=1)
    key = limited(rpm=2, max_concurrent=5)
    first = await process.admit(key, estimate=0.75)
    refusal = await refused(process, key, estimate=0.5)
    assert refusal.reason == "BUDGET_EXCEEDED"
    assert "$0.7500 in flight" in refusal.message
    await process.settle(first, cost=0.25)
    second = await process.admit(key, estimate=0.75)  # the refused call's request and slot, given back
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.0
    await process.settle(second, cost=0.75)
    assert process.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 1.0


# --- Redis out -------------------------------------------------------------------------------------------------------


async def test_fail_closed_refuses_with_a_retry_delay_while_redis_cannot_be_reached(processes: Processes) -> None:
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", TEAM_DAY, fail_open=False, timeout_s=1.0)
    process.metrics.set_shared_state_up(up=True)  # as a started gateway reports it
    for key, estimate in ((limited(rpm=10), None), (KEY, 0.5)):
        with pytest.raises(Unavailable) as caught:
            await process.admit(key, estimate=estimate)
        assert caught.value.reason == "SHARED_STATE_UNAVAILABLE"
        assert caught.value.retry_after == RETRY_AFTER_DOWN_S
        assert caught.value.message == "the shared rate limits and budgets (Redis) cannot be reached; retry shortly"
    assert process.state_up() == 0.0


async def test_fail_open_keeps_each_process_to_its_share_of_the_limits(processes: Processes) -> None:
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", TEAM_DAY, timeout_s=1.0)
    refusal = await refused(process, estimate=2.0)  # the call that finds Redis out is held to the budgets too
    assert refusal.reason == "BUDGET_EXCEEDED"
    process.state.live = 2  # two processes were alive at the last heartbeat
    key = limited(rpm=5)
    first = await process.admit(key)
    await process.admit(key)
    refusal = await refused(process, key)  # its share: 2 requests a minute
    assert refusal.reason == "KEY_RATE_LIMITED"
    assert "(2 requests/min)" in refusal.message
    assert process.state_up() == 0.0
    await process.settle(first)

    slots = limited(max_concurrent=4)  # its share: 2 calls in flight
    budget = await process.admit(slots, estimate=0.75)  # budgets: this process's book
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.25
    assert (await refused(process, slots, estimate=0.5)).reason == "BUDGET_EXCEEDED"
    await process.settle(budget, cost=0.5)
    assert process.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.5


async def test_fail_open_shares_follow_the_processes_alive(processes: Processes) -> None:
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)
    key = limited(max_concurrent=4)
    process.state.live = 4
    held = [await process.admit(key)]
    assert (await refused(process, key)).reason == "KEY_CONCURRENCY_LIMITED"  # 4 / 4 processes
    await process.settle(held.pop())
    process.state.live = 2
    held += [await process.admit(key), await process.admit(key)]  # 4 / 2 processes
    assert (await refused(process, key)).reason == "KEY_CONCURRENCY_LIMITED"
    process.state.live = 1
    held += [await process.admit(key), await process.admit(key)]  # alone: the whole limit
    assert (await refused(process, key)).reason == "KEY_CONCURRENCY_LIMITED"
    process.state.live = 200
    for ticket in held:
        await process.settle(ticket)
    held = [await process.admit(key)]  # more processes than calls allowed: still one each
    assert (await refused(process, key)).reason == "KEY_CONCURRENCY_LIMITED"


async def test_fail_open_divides_the_token_rate_too(processes: Processes) -> None:
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1.0)
    process.state.live = 2
    key = limited(tpm=100)
    first = await process.admit(key, tokens=50)
    refusal = await refused(process, key, tokens=1)
    assert "(50 tokens/min)" in refusal.message
    await process.settle(first, used_tokens=10)  # 40 of its share back
    await process.admit(key, tokens=40)
    await refused(process, key, tokens=1)


async def test_after_a_failure_calls_stay_local_for_the_retry_delay_then_share_again_and_replay_settlements(
    own_redis: tuple[int, list[RedisServer]], processes: Processes, caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = own_redis
    server = start(own_redis)
    process = processes.make(f"redis://127.0.0.1:{port}/0", TEAM_DAY, timeout_s=1.0)
    key = limited(rpm=100)
    shared = await process.admit(key, estimate=0.5)
    stop(server)
    process.limits.settle(shared, 0, 0.25)  # fails: kept to replay
    await process.limits.drain()
    assert process.state_up() == 0.0

    server = start(own_redis)
    local = await process.admit(key)  # within the retry delay: not asked
    assert server.client().dbsize() == 0
    await process.settle(local)

    process.clock.now += RETRY_AFTER_DOWN_S
    await process.admit(key, estimate=0.25)  # asks Redis again: its counters start from the ledger (0 here)
    assert process.state_up() == 1.0
    for _ in range(500):  # the failed settlement is replayed in the background
        if process.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.25:
            break
        await asyncio.sleep(0.01)
    assert process.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.25
    await process.admit(key)  # shared again: no second notice of the recovery
    back = [r for r in caplog.records if r.getMessage() == "shared limits: Redis answers again; limits are shared"]
    assert len(back) == 1


# --- batches ---------------------------------------------------------------------------------------------------------


def pending(usd: float) -> PendingEstimate:
    """A batch's pending items' estimates, as the batch store would sum them."""

    async def estimate() -> float:
        return usd

    return estimate


def assert_held_for_a_batch_lease(server: RedisServer, batch_id: str) -> None:
    """A batch's reservation outlives the process that made it by `BATCH_LEASE_S` (Redis's clock), not a call's 15
    minutes: a batch no process polls for a while keeps its budget."""
    client = server.client()
    [reservations] = [name for name in client.keys("*") if name.endswith(b":resv")]
    expires = client.zscore(reservations, f"batch:{batch_id}")
    seconds, microseconds = client.time()
    assert expires is not None
    assert BATCH_LEASE_S - 5 <= expires - (seconds + microseconds / 1e6) <= BATCH_LEASE_S


async def test_a_batch_is_reserved_whole_then_settled_item_by_item_on_each_of_its_accounts(
    redis_server: RedisServer, processes: Processes
) -> None:
    one = processes.make(redis_server.url, TEAM_DAY, KEY_MONTH)
    two = processes.make(redis_server.url, TEAM_DAY, KEY_MONTH)
    teammate = dataclasses.replace(KEY, id="key_2")
    await two.admit(teammate, estimate=0.125)  # in flight on the team's account only
    await one.limits.reserve_batch("b1", KEY, 0.75)
    await refused(two, estimate=0.25)  # 0.875 of the team's 1.00 held across both processes
    assert_held_for_a_batch_lease(redis_server, "b1")

    await one.limits.settle_batch_share("b1", KEY, 0.25, 0.125)  # an item of the batch ends
    await one.limits.drain()
    # Each account's own counters: the team holds the teammate's call too, the key's month only the batch.
    assert one.book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.125
    assert one.book.remaining(BudgetScope.TEAM, "shop") == 0.25  # 1.00 - 0.125 - (0.50 + 0.125) held
    assert one.book.spent(BudgetScope.KEY, "key_1", Period.MONTH) == 0.125
    assert one.book.remaining(BudgetScope.KEY, "key_1") == 1.375  # 2.00 - 0.125 - 0.50 held
    landing = await two.admit(estimate=0.25)  # the item's share was given back in Redis: exactly on the cap
    await two.settle(landing)

    await one.limits.release_batch("b1", KEY)  # the batch ends: the rest of its reservation comes back
    await one.limits.drain()
    await two.admit(estimate=0.75)  # 1.00 - 0.125 spent - 0.125 the teammate's call


async def test_a_batch_redis_lost_is_held_again_at_its_pending_estimate_whatever_the_caps_say(
    redis_server: RedisServer, processes: Processes
) -> None:
    ledger = Ledger({(BudgetScope.TEAM, "shop", Period.DAY): 0.75})
    process = processes.make(redis_server.url, TEAM_DAY, ledger=ledger)
    await process.limits.reserve_batch("b1", KEY, 0.25)  # exactly on the cap
    await process.limits.hold_batch("b1", KEY, pending(0.125))  # Redis holds it: only renewed
    await refused(process, estimate=0.001)

    redis_server.client().flushall()  # Redis restarted empty
    await process.limits.hold_batch("b1", KEY, pending(0.5))  # admitted before: held again though past the cap
    await refused(process, estimate=0.125)  # 0.75 spent + 0.5 held; without the batch it would pass
    assert_held_for_a_batch_lease(redis_server, "b1")


async def test_a_process_holds_its_batches_pending_items_once_whatever_the_caps_say() -> None:
    """A restarted process (or one taking a batch over) reserves the batch's pending items in its own book once,
    settles each item against that reservation, and gives the rest back when the batch ends."""
    book = BudgetBook()
    book.set_budget(TEAM_DAY)
    limits = LocalLimits(KeyLimiter(), book)
    limits.settle(limits.admit("earlier", KEY, 0, 0.25), 0, 0.25)
    await limits.hold_batch("b1", KEY, pending(0.5))
    assert book.remaining(BudgetScope.TEAM, "shop") == 0.25
    await limits.hold_batch("b1", KEY, pending(0.5))  # held already: not twice
    assert book.remaining(BudgetScope.TEAM, "shop") == 0.25
    await limits.settle_batch_share("b1", KEY, 0.25, 0.125)
    assert book.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.375
    assert book.remaining(BudgetScope.TEAM, "shop") == 0.375  # 1.00 - 0.375 spent - 0.25 still held
    await limits.hold_batch("b2", KEY, pending(0.5))  # past the cap: held all the same, the batch was admitted
    with pytest.raises(RateLimited):
        limits.admit("now", KEY, 0, 0.001)
    for batch in ("b1", "b2"):
        await limits.release_batch(batch, KEY)
    assert book.remaining(BudgetScope.TEAM, "shop") == 0.625


async def test_a_batch_admitted_while_redis_is_out_is_held_and_given_back_in_the_process_own_book(
    processes: Processes,
) -> None:
    process = processes.make(f"redis://127.0.0.1:{free_port()}/0", TEAM_DAY, timeout_s=1.0)  # nothing listens
    await process.limits.reserve_batch("b1", KEY, 0.5)  # fail open: this process's book holds it
    await process.limits.reserve_batch("b2", KEY, 0.25)  # within the retry delay: not asked again, held the same
    assert process.limits.held_batches() == ["b1", "b2"]
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.25
    await process.limits.settle_batch_share("b1", KEY, 0.25, 0.125)
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.375  # 1.00 - 0.125 spent - (0.25 + 0.25) held
    await process.limits.release_batch("b1", KEY)
    assert process.limits.held_batches() == ["b2"]
    assert process.book.remaining(BudgetScope.TEAM, "shop") == 0.625
