"""A call's admission against its key's own limits and its budgets, all or none, and the settlement that gives back
what it took: kept in this process (`LocalLimits`), or shared by every worker and instance through Redis
(`SharedLimits`).

The budget bound is the same either way: a hard cap is checked against spend plus every open reservation, so calls
whose real cost is within their estimate never take a cap past its value; when a provider bills more than a call's
estimate, the cap can be passed by the sum of those excesses over the calls in flight together (README, Budgets).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from gateway.errors import RateLimited, Unavailable
from gateway.ledger.budgets import BudgetBook, Reservation, budget_exceeded
from gateway.observe.metrics import GatewayMetrics
from gateway.records.governance import Budget, BudgetScope, KeyLimits, KeyRecord, Period
from gateway.state.key_limits import KeyLimiter, describe
from gateway.state.keyspace import StateUnavailable, part, tag

if TYPE_CHECKING:
    from gateway.state.redis import RedisState

log = logging.getLogger("gateway.state")

SLOT_LEASE_S: Final = 900.0
"""How long a call holds a shared slot or reservation if its process dies before giving it back: longer than any
call is expected to run (a call that outlives it stops counting against max_concurrent and its reservation)."""
RETRY_AFTER_DOWN_S: Final = 1.0
"""After Redis fails, calls keep the fallback this long before asking Redis again."""
BATCH_LEASE_S: Final = 2 * 86_400.0
"""How long a batch's shared reservation holds if no process polls the batch any more (each poll round renews it):
past a batch's completion window (24 h) and the fetching of its results."""
_KEEP_AFTER_PERIOD_S: Final = 86_400
_MAX_PENDING_SETTLEMENTS: Final = 100_000

_Settlement = Callable[[], Awaitable[None]]
"""A settlement in Redis, kept while Redis is out and applied when it answers again."""
PendingEstimate = Callable[[], Awaitable[float]]
"""The estimates of a batch's items without an outcome (read only when they must be held again)."""
SpendLoader = Callable[[BudgetScope, str, Period], Awaitable[float]]
"""What the ledger holds for a budget's subject in the current period (the shared counters start from it)."""


@dataclass(slots=True)
class Ticket:
    """What an admitted call holds, given back by `settle`."""

    call_id: str
    key: KeyRecord
    tokens: int = 0
    """Taken from the key's tokens-per-minute limit."""
    local: Reservation | None = None
    """The budget reservation kept in this process (local limits, or the fallback while Redis is out)."""
    accounts: list[tuple[Budget, str]] = field(default_factory=list)
    """The budgets the shared store reserved on, with their counters' Redis keys."""
    local_key: KeyRecord | None = None
    """The key as this process's limiter holds it (all its limits, or a share of them), until `settle`."""
    limits_shared: bool = False
    leased_tokens: int = 0
    """Lease mode: tokens taken from this process's lease, corrected locally at the end."""


class LocalLimits:
    """Limits and budgets kept by this process alone: exact inside it, not across processes."""

    def __init__(self, limiter: KeyLimiter, budgets: BudgetBook) -> None:
        self._limiter = limiter
        self.budgets = budgets
        self._batches: dict[str, Reservation] = {}
        """Batch id -> what this process holds on its owner's budgets for the items not billed yet."""

    def admit(self, call_id: str, key: KeyRecord, tokens: int, estimate_usd: float | None) -> Ticket:
        ticket = Ticket(call_id, key, tokens)
        self.hold(ticket, key, tokens)
        if estimate_usd is not None and self.budgets.governs(key):
            try:
                ticket.local = self.budgets.reserve(key, estimate_usd)
            except RateLimited:
                self.settle(ticket, 0, 0.0)
                raise
        return ticket

    def hold(self, ticket: Ticket, key: KeyRecord, tokens: int) -> None:
        """Takes `key`'s limits (the key's own, or a share of them) for the ticket's call."""
        if not key.limits.empty:
            self._limiter.admit(key, tokens)
            ticket.local_key = key

    def settle(self, ticket: Ticket, used_tokens: int, cost_usd: float) -> None:
        if ticket.local_key is not None:
            self._limiter.release(ticket.local_key, ticket.tokens, used_tokens)
            ticket.local_key = None
        if ticket.local is not None:
            self.budgets.settle(ticket.local, cost_usd)
            ticket.local = None

    # --- batches: one reservation for a whole batch, settled item by item ------------------------------------------

    async def reserve_batch(self, batch_id: str, key: KeyRecord, estimate_usd: float) -> None:
        """The whole batch at its estimate, or RESOURCE_EXHAUSTED (BUDGET_EXCEEDED, with the amounts)."""
        if self.budgets.governs(key):
            self._batches[batch_id] = self.budgets.reserve(key, estimate_usd)

    async def hold_batch(self, batch_id: str, key: KeyRecord, pending_usd: PendingEstimate) -> None:
        """A batch this process works on without holding its reservation (after a restart, or taken over from
        another process): its pending items' estimates held again, whatever the caps say now, since the batch was
        admitted under them. The book is this process's own, so this is all a restart can do."""
        if batch_id not in self._batches and self.budgets.governs(key):
            self._batches[batch_id] = self.budgets.reserve(key, await pending_usd(), check=False)

    async def settle_batch_share(self, batch_id: str, key: KeyRecord, share_usd: float, cost_usd: float) -> None:
        """An item's share of its batch's reservation replaced by what it cost, in the period in which it ends."""
        reservation = self._batches.get(batch_id)
        if reservation is None:
            return
        self.budgets.settle(dataclasses.replace(reservation, estimate=min(share_usd, reservation.estimate)), cost_usd)
        reservation.estimate = max(reservation.estimate - share_usd, 0.0)

    async def release_batch(self, batch_id: str, key: KeyRecord) -> None:
        """The batch ended: whatever is still held (items settled elsewhere) is given back."""
        reservation = self._batches.pop(batch_id, None)
        if reservation is not None:
            self.budgets.settle(reservation, 0.0)

    def held_batches(self) -> list[str]:
        """The batches this process holds a reservation for in its own book."""
        return list(self._batches)


@dataclass(slots=True)
class _Lease:
    requests: int = 0
    tokens: int = 0


class SharedLimits:
    """Limits and budget counters in Redis, shared by every process that uses the same Redis.

    `exact`: a call's key limits and budget reservations in one round trip to admit, one to settle: never over a
    limit, whatever the number of processes. `lease`: each process takes `lease_size` requests (and tokens for as
    many calls) from Redis at a time and serves calls from them locally, so most calls make no round trip; a limit
    can be passed by at most processes x lease_size in any window, since a lease is counted when taken, not when
    spent. Calls in flight are divided among the live processes in lease mode; budgets are exact in both.

    While Redis fails or is slow: `fail_open` keeps the limits in this process, each divided by the processes last
    seen alive (logged, and `llm_gateway_shared_state_up` reads 0); `fail_closed` refuses calls with UNAVAILABLE and
    a retry delay. Redis back means shared again, without a restart; settlements that failed meanwhile are applied
    then."""

    def __init__(
        self,
        state: RedisState,
        local: LocalLimits,
        load_spend: SpendLoader,
        *,
        mode: Literal["exact", "lease"],
        lease_size: int,
        fail_open: bool,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._local = local
        self._budgets = local.budgets
        self._load_spend = load_spend
        self._lease_mode = mode == "lease"
        self._lease_size = lease_size
        self._fail_open = fail_open
        self._metrics = metrics
        self._clock = clock
        self._down_until = 0.0
        self._leases: dict[str, _Lease] = {}
        self._pending: list[_Settlement] = []
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def budgets(self) -> BudgetBook:
        return self._budgets

    # --- admission ---------------------------------------------------------------------------------------------------

    async def admit(self, call_id: str, key: KeyRecord, tokens: int, estimate_usd: float | None) -> Ticket:
        capped = self._budgets.capped(key) if estimate_usd is not None else []
        if key.limits.empty and not capped:
            return Ticket(call_id, key)
        if self._clock() < self._down_until:
            return self._fallback(call_id, key, tokens, estimate_usd)
        try:
            if self._lease_mode:
                ticket = await self._admit_leased(call_id, key, tokens, estimate_usd or 0.0, capped)
            else:
                ticket = await self._admit_exact(call_id, key, tokens, estimate_usd or 0.0, capped, key.limits)
        except StateUnavailable as err:
            self._failed(err)
            return self._fallback(call_id, key, tokens, estimate_usd)
        self._recovered()
        return ticket

    async def _admit_exact(
        self,
        call_id: str,
        key: KeyRecord,
        tokens: int,
        estimate: float,
        capped: list[tuple[Budget, float, float]],
        limits: KeyLimits,
        *,
        lease_s: float = SLOT_LEASE_S,
        check: bool = True,
    ) -> Ticket:
        """`lease_s`: how long the slot and the reservation hold if this process dies; without `check`, reserves
        whatever the caps say."""
        prefix = tag("t", key.team)
        subject = f"{prefix}k:{part(key.id)}:"
        keys = [f"{subject}rpm", f"{subject}tpm", f"{subject}slots", f"{prefix}resv", f"{prefix}resvspec"]
        args: list[object] = [
            call_id,
            limits.rpm or 0,
            1,
            limits.tpm or 0,
            tokens,
            limits.max_concurrent or 0,
            lease_s,
            repr(estimate),
            len(capped),
        ]
        now = time.time()
        for budget, start, end in capped:
            keys.append(_account_key(prefix, budget, start))
            cap = budget.hard_usd if check and budget.hard_usd is not None else -1
            args += [repr(cap), _keep_s(end, now)]
        while True:
            reply = await self._state.admit(keys, args)
            outcome = int(reply[0])
            if outcome == 0:
                break
            if outcome == 1:
                raise _refusal(key, reply, capped, estimate)
            # Counters this store has not seen yet (a new budget, or Redis restarted): from the ledger, then again.
            for index in reply[1:]:
                budget, _, end = capped[int(index) - 1]
                spent = await self._load_spend(budget.scope, budget.subject, budget.period)
                await self._state.init_account(keys[4 + int(index)], spent, _keep_s(end, now))
        values = reply[1:]
        for i, (budget, _, _) in enumerate(capped):
            self._budgets.update(budget, float(_text(values[2 * i])), float(_text(values[2 * i + 1])))
        ticket = Ticket(call_id, key, tokens, limits_shared=not limits.empty)
        if estimate > 0:
            ticket.accounts = [(budget, keys[5 + i]) for i, (budget, _, _) in enumerate(capped)]
        return ticket

    async def _admit_leased(
        self, call_id: str, key: KeyRecord, tokens: int, estimate: float, capped: list[tuple[Budget, float, float]]
    ) -> Ticket:
        limits = key.limits
        lease = self._leases.get(key.id)
        if lease is None:
            lease = self._leases[key.id] = _Lease()
        need_requests = limits.rpm is not None and lease.requests < 1
        need_tokens = limits.tpm is not None and tokens > 0 and lease.tokens < tokens
        if need_requests or need_tokens:
            await self._refill(key, lease, tokens, need_requests, need_tokens)
        if limits.rpm is not None:
            lease.requests -= 1
        if limits.tpm is not None:
            lease.tokens -= tokens
        ticket = Ticket(call_id, key, leased_tokens=tokens if limits.tpm is not None else 0)
        if limits.max_concurrent is not None:
            # Calls in flight: this process's share, kept here (a lease of slots would need a round trip to return).
            try:
                self._local.hold(ticket, self._share_of(KeyLimits(max_concurrent=limits.max_concurrent), key), 0)
            except RateLimited:
                self._give_back_lease(ticket)
                raise
        if capped:
            # Checked even for a call estimated at nothing, as in exact mode: a cap already passed refuses it.
            try:
                budgets = await self._admit_exact(call_id, key, 0, estimate, capped, KeyLimits())
            except BaseException:
                self._give_back_lease(ticket)
                self._local.settle(ticket, 0, 0.0)
                raise
            ticket.accounts = budgets.accounts
        return ticket

    async def _refill(self, key: KeyRecord, lease: _Lease, tokens: int, requests: bool, more_tokens: bool) -> None:
        limits = key.limits
        size = self._lease_size
        granted_requests = min(size, limits.rpm or 0) if requests else 0
        granted_tokens = min(size * tokens, limits.tpm or 0) if more_tokens else 0  # more_tokens: tokens > 0
        subject = f"{tag('t', key.team)}k:{part(key.id)}:"
        reply = await self._state.take(
            [f"{subject}rpm", f"{subject}tpm", f"{subject}slots"],
            ["lease", limits.rpm or 0, granted_requests, limits.tpm or 0, granted_tokens, 0, 0],
        )
        if int(reply[0]) != 0:
            raise _limit_refusal(key, reply)
        lease.requests += granted_requests
        lease.tokens += granted_tokens

    def _give_back_lease(self, ticket: Ticket) -> None:
        lease = self._leases.get(ticket.key.id)
        if lease is not None:
            lease.requests += 1 if ticket.key.limits.rpm is not None else 0
            lease.tokens += ticket.leased_tokens

    # --- settlement --------------------------------------------------------------------------------------------------

    def settle(self, ticket: Ticket, used_tokens: int, cost_usd: float) -> None:
        """Gives back what the call took. The shared part goes in the background: the caller's answer does not wait
        for it (the reservation holds until it lands, which can only make later calls more careful); `drain` waits
        for what is still on its way at shutdown."""
        if ticket.leased_tokens:
            lease = self._leases.get(ticket.key.id)
            if lease is not None:
                lease.tokens += ticket.leased_tokens - used_tokens
        self._local.settle(ticket, used_tokens, cost_usd)  # what this process holds for it, if anything
        if ticket.limits_shared or ticket.accounts:
            task = asyncio.get_running_loop().create_task(
                self._settle(functools.partial(self._apply, ticket, used_tokens, cost_usd))
            )
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Waits for every settlement on its way to Redis (bounded by the Redis timeout each)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _settle(self, apply: _Settlement) -> None:
        """Applies a settlement in Redis, or keeps it to apply when Redis answers again."""
        try:
            await apply()
        except StateUnavailable as err:
            self._failed(err)
            if len(self._pending) < _MAX_PENDING_SETTLEMENTS:
                self._pending.append(apply)

    async def _apply(self, ticket: Ticket, used_tokens: int, cost_usd: float) -> None:
        key = ticket.key
        prefix = tag("t", key.team)
        subject = f"{prefix}k:{part(key.id)}:"
        keys = [f"{subject}tpm", f"{subject}slots", f"{prefix}resv", f"{prefix}resvspec"]
        keys += [account for _, account in ticket.accounts]
        tpm = (key.limits.tpm or 0) if ticket.limits_shared else 0
        args = [ticket.call_id, tpm, ticket.tokens, used_tokens, repr(cost_usd), len(ticket.accounts)]
        values = await self._state.settle(keys, args)
        for i, (budget, _) in enumerate(ticket.accounts):
            self._budgets.update(budget, float(_text(values[2 * i])), float(_text(values[2 * i + 1])))

    # --- batches: the whole batch reserved in Redis under its id, settled item by item -----------------------------

    async def reserve_batch(self, batch_id: str, key: KeyRecord, estimate_usd: float) -> None:
        """The whole batch at its estimate, checked and reserved in Redis as a call's would be, so a hard cap holds
        across every process; the reservation outlives this process (`BATCH_LEASE_S`, renewed by `hold_batch`)."""
        capped = self._budgets.capped(key)
        if not capped:
            return
        if self._clock() < self._down_until:
            await self._reserve_batch_locally(batch_id, key, estimate_usd)
            return
        try:
            await self._admit_exact(
                _batch_call(batch_id), key, 0, estimate_usd, capped, KeyLimits(), lease_s=BATCH_LEASE_S
            )
        except StateUnavailable as err:
            self._failed(err)
            await self._reserve_batch_locally(batch_id, key, estimate_usd)
            return
        self._recovered()

    async def _reserve_batch_locally(self, batch_id: str, key: KeyRecord, estimate_usd: float) -> None:
        if not self._fail_open:
            raise _shared_state_unavailable()
        await self._local.reserve_batch(batch_id, key, estimate_usd)

    async def hold_batch(self, batch_id: str, key: KeyRecord, pending_usd: PendingEstimate) -> None:
        """Each round a process works on a batch: its reservation's lease renewed in Redis. Held again (pending items'
        estimates, no cap check: the batch was admitted) only where Redis lost it (a Redis restart, or a batch no
        process polled for `BATCH_LEASE_S`); a process restart takes nothing back, the reservation is Redis's."""
        if batch_id in self._local.held_batches():
            return
        capped = self._budgets.capped(key)
        if not capped:
            return
        prefix = tag("t", key.team)
        try:
            if not await self._state.renew(f"{prefix}resv", f"{prefix}resvspec", _batch_call(batch_id), BATCH_LEASE_S):
                estimate = await pending_usd()
                await self._admit_exact(
                    _batch_call(batch_id), key, 0, estimate, capped, KeyLimits(), lease_s=BATCH_LEASE_S, check=False
                )
        except StateUnavailable as err:
            self._failed(err)  # the next round renews it

    async def settle_batch_share(self, batch_id: str, key: KeyRecord, share_usd: float, cost_usd: float) -> None:
        """An item's share of its batch's reservation given back and its cost added to the spend of the accounts of
        the period in which it ends (kept to apply later while Redis is out)."""
        if batch_id in self._local.held_batches():
            await self._local.settle_batch_share(batch_id, key, share_usd, cost_usd)
            return
        capped = self._budgets.capped(key)
        if capped:
            await self._settle(functools.partial(self._apply_share, batch_id, key, capped, share_usd, cost_usd))

    async def _apply_share(
        self, batch_id: str, key: KeyRecord, capped: list[tuple[Budget, float, float]], share: float, cost: float
    ) -> None:
        prefix = tag("t", key.team)
        accounts = [_account_key(prefix, budget, start) for budget, start, _ in capped]
        values = await self._state.settle_share(
            [f"{prefix}resv", f"{prefix}resvspec", *accounts],
            [_batch_call(batch_id), repr(share), repr(cost), len(accounts)],
        )
        for i, (budget, _, _) in enumerate(capped):
            self._budgets.update(budget, float(_text(values[2 * i])), float(_text(values[2 * i + 1])))

    async def release_batch(self, batch_id: str, key: KeyRecord) -> None:
        """The batch ended: what its reservation still holds is given back, in Redis and in this process."""
        await self._local.release_batch(batch_id, key)
        if self._budgets.capped(key):
            await self._settle(functools.partial(self._apply, Ticket(_batch_call(batch_id), key), 0, 0.0))

    def held_batches(self) -> list[str]:
        """The batches this process holds in its own book (admitted while Redis was out, with fail_open)."""
        return self._local.held_batches()

    # --- Redis out ---------------------------------------------------------------------------------------------------

    def _fallback(self, call_id: str, key: KeyRecord, tokens: int, estimate_usd: float | None) -> Ticket:
        if not self._fail_open:
            raise _shared_state_unavailable()
        return self._local.admit(call_id, self._share_of(key.limits, key), tokens, estimate_usd)

    def _share_of(self, limits: KeyLimits, key: KeyRecord) -> KeyRecord:
        """The key with each of `limits` divided by the processes last seen alive: together they stay near it."""
        return dataclasses.replace(key, limits=_divided(limits, self._state.live))

    def _failed(self, err: StateUnavailable) -> None:
        if self._clock() >= self._down_until:
            log.warning(
                "shared limits: Redis failed (%s); %s for %.0f s",
                err,
                "each process keeps its share of the limits" if self._fail_open else "calls are refused",
                RETRY_AFTER_DOWN_S,
            )
        self._down_until = self._clock() + RETRY_AFTER_DOWN_S
        if self._metrics is not None:
            self._metrics.set_shared_state_up(up=False)

    def _recovered(self) -> None:
        if not self._down_until:
            return
        self._down_until = 0.0
        log.warning("shared limits: Redis answers again; limits are shared")
        if self._metrics is not None:
            self._metrics.set_shared_state_up(up=True)
        if self._pending:
            pending, self._pending = self._pending, []
            asyncio.get_running_loop().create_task(self._replay(pending))

    async def _replay(self, pending: list[_Settlement]) -> None:
        for apply in pending:
            await self._settle(apply)


def _shared_state_unavailable() -> Unavailable:
    return Unavailable(
        "the shared rate limits and budgets (Redis) cannot be reached; retry shortly",
        reason="SHARED_STATE_UNAVAILABLE",
        retry_after=RETRY_AFTER_DOWN_S,
    )


def _refusal(
    key: KeyRecord, reply: list[object], capped: list[tuple[Budget, float, float]], estimate: float
) -> RateLimited:
    if _text(reply[1]) == "BUDGET":
        budget, _, end = capped[int(_text(reply[4])) - 1]
        return budget_exceeded(budget, float(_text(reply[2])), float(_text(reply[3])), estimate, end - time.time())
    return _limit_refusal(key, reply)


def _limit_refusal(key: KeyRecord, reply: list[object]) -> RateLimited:
    """A refusal by the key's own limits (what a take, which reserves no budget, can answer)."""
    wait = float(_text(reply[2]))
    if _text(reply[1]) == "CONCURRENCY":
        return RateLimited(
            f"key {key.id} already has {key.limits.max_concurrent} calls in flight, its limit",
            reason="KEY_CONCURRENCY_LIMITED",
            retry_after=wait,
        )
    return RateLimited(
        f"key {key.id} is over its rate limit ({describe(key.limits)}); retry in {wait:.2f} s",
        reason="KEY_RATE_LIMITED",
        retry_after=wait,
    )


def _batch_call(batch_id: str) -> str:
    """A batch's reservation in Redis, under the same book as the calls' (a batch id never equals a call id)."""
    return f"batch:{batch_id}"


def _account_key(prefix: str, budget: Budget, start: float) -> str:
    return f"{prefix}b:{budget.scope.value}:{part(budget.subject)}:{budget.period.value}:{int(start)}"


def _keep_s(period_end: float, now: float) -> int:
    return int(period_end - now) + _KEEP_AFTER_PERIOD_S


def _divided(limits: KeyLimits, live: int) -> KeyLimits:
    def share(value: int | None) -> int | None:
        return None if value is None else max(1, value // live)  # live counts this process: at least 1

    return KeyLimits(share(limits.rpm), share(limits.tpm), share(limits.max_concurrent))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
