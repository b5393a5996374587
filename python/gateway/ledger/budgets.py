"""Budgets in USD per day or month on keys and teams, checked before a call reaches a provider.

Every admitted call reserves its estimated cost on each account it is charged to, and settles the real cost when it
ends. A check counts spend plus open reservations plus the call's own estimate, so calls whose real cost stays within
their estimates never together pass a hard cap. Calls that cost more than estimated pass it by their excesses: at most
the sum of the excesses of the calls in flight at the cap's last admission. All of it is plain arithmetic on the
event loop's thread, so a check and its reservation are one step that no other call can interleave.

The book is this process's own: spend other workers settle after `load_spend` is not seen here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import RateLimited
from gateway.ledger.periods import period_bounds
from gateway.records.governance import Budget, BudgetScope, KeyRecord, Period

_Subject = tuple[BudgetScope, str]
_AccountKey = tuple[BudgetScope, str, Period]
_ADJECTIVE = {Period.DAY: "daily", Period.MONTH: "monthly"}


@dataclass(slots=True)
class _Account:
    """One subject's spend in one period, which ends at `end`."""

    end: float
    spent: float = 0.0
    reserved: float = 0.0


@dataclass(slots=True)
class Reservation:
    accounts: list[_AccountKey]
    estimate: float


class BudgetBook:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._budgets: dict[_Subject, dict[Period, Budget]] = {}
        self._accounts: dict[_AccountKey, _Account] = {}

    # --- configuration ----------------------------------------------------------------------------------------------

    def set_budget(self, budget: Budget) -> bool:
        """Sets or (with neither cap) removes a budget; True when its subject was not governed before, so its
        spend so far must be loaded (`load_spend`)."""
        subject = (budget.scope, budget.subject)
        new = subject not in self._budgets
        if budget.hard_usd is None and budget.soft_usd is None:
            periods = self._budgets.get(subject, {})
            periods.pop(budget.period, None)
            if not periods:
                self._budgets.pop(subject, None)
            return False
        self._budgets.setdefault(subject, {})[budget.period] = budget
        return new

    def budgets(self) -> list[Budget]:
        return [b for periods in self._budgets.values() for b in periods.values()]

    def budgets_of(self, scope: BudgetScope, subject: str) -> list[Budget]:
        return list(self._budgets.get((scope, subject), {}).values())

    def load_spend(self, scope: BudgetScope, subject: str, period: Period, spent: float) -> None:
        """Spend already in the ledger for the current `period`."""
        self._account(scope, subject, period, self._clock()).spent = spent

    # --- the call path ----------------------------------------------------------------------------------------------

    def governs(self, key: KeyRecord) -> bool:
        """Whether a budget applies to this key or its team; when not, calls skip estimating their cost."""
        budgets = self._budgets
        return bool(budgets) and ((BudgetScope.KEY, key.id) in budgets or (BudgetScope.TEAM, key.team) in budgets)

    def downgrade(self, key: KeyRecord) -> str | None:
        """The cheaper model a passed soft cap sends this key's calls to, if any."""
        now = self._clock()
        for subject in ((BudgetScope.KEY, key.id), (BudgetScope.TEAM, key.team)):
            for budget in self._budgets.get(subject, {}).values():
                if budget.soft_usd is None or budget.downgrade_to is None:
                    continue
                account = self._account(budget.scope, budget.subject, budget.period, now)
                if account.spent + account.reserved >= budget.soft_usd:
                    return budget.downgrade_to
        return None

    def reserve(self, key: KeyRecord, estimate_usd: float, *, check: bool = True) -> Reservation:
        """Reserves the estimate on the key's and team's accounts, or raises RESOURCE_EXHAUSTED naming the budget.
        Without `check`, reserves whatever the caps say: what a restarted process takes back for a batch it had
        admitted before."""
        now = self._clock()
        keys: list[_AccountKey] = []
        accounts: list[_Account] = []
        for subject in ((BudgetScope.KEY, key.id), (BudgetScope.TEAM, key.team)):
            periods = self._budgets.get(subject)
            for period in Period:
                account = self._account(subject[0], subject[1], period, now)
                keys.append((subject[0], subject[1], period))
                accounts.append(account)
                budget = periods.get(period) if periods else None
                if not check or budget is None or budget.hard_usd is None:
                    continue
                if account.spent + account.reserved + estimate_usd > budget.hard_usd:
                    raise budget_exceeded(budget, account.spent, account.reserved, estimate_usd, account.end - now)
        for account in accounts:
            account.reserved += estimate_usd
        return Reservation(keys, estimate_usd)

    def settle(self, reservation: Reservation | None, cost_usd: float) -> None:
        """Replaces a call's reservation by its real cost (0 when it failed before any usage). Calls of keys no
        budget governs reserve nothing and are not tracked here: their spend is in the ledger."""
        if reservation is None:
            return
        now = self._clock()
        for scope, subject, period in reservation.accounts:
            account = self._account(scope, subject, period, now)
            account.reserved = max(account.reserved - reservation.estimate, 0.0)
            account.spent += cost_usd

    def capped(self, key: KeyRecord) -> list[tuple[Budget, float, float]]:
        """The budgets that apply to this key's calls now (the key's and its team's), with their period's start and
        end: the accounts a shared store keeps for it."""
        now = self._clock()
        return [
            (budget, *period_bounds(period, now))
            for subject in ((BudgetScope.KEY, key.id), (BudgetScope.TEAM, key.team))
            for period, budget in self._budgets.get(subject, {}).items()
        ]

    def update(self, budget: Budget, spent: float, reserved: float) -> None:
        """What a shared store says a budget's account holds now: this process's view for downgrades and reports."""
        account = self._account(budget.scope, budget.subject, budget.period, self._clock())
        account.spent = spent
        account.reserved = reserved

    def remaining(self, scope: BudgetScope, subject: str) -> float | None:
        """What the tightest hard cap of a key or team still allows now (spend and calls in flight counted); None
        without a hard cap."""
        now = self._clock()
        left = [
            budget.hard_usd - account.spent - account.reserved
            for budget in self._budgets.get((scope, subject), {}).values()
            if budget.hard_usd is not None
            for account in (self._account(scope, subject, budget.period, now),)
        ]
        return min(left) if left else None

    def spent(self, scope: BudgetScope, subject: str, period: Period) -> float:
        return self._account(scope, subject, period, self._clock()).spent

    def _account(self, scope: BudgetScope, subject: str, period: Period, now: float) -> _Account:
        key = (scope, subject, period)
        account = self._accounts.get(key)
        if account is None or now >= account.end:
            # A new period starts from nothing; reservations of calls still in flight move to it.
            account = _Account(period_bounds(period, now)[1], reserved=account.reserved if account is not None else 0.0)
            self._accounts[key] = account
        return account


def budget_exceeded(
    budget: Budget, spent: float, reserved: float, estimate_usd: float, retry_after: float
) -> RateLimited:
    """The refusal of a call whose estimate would pass a hard cap, naming the budget and where it stands."""
    assert budget.hard_usd is not None
    return RateLimited(
        f"the {_ADJECTIVE[budget.period]} budget of {budget.scope.value} {budget.subject} (${budget.hard_usd:.2f}) "
        f"would be exceeded: ${spent:.4f} spent, ${reserved:.4f} in flight, this call up to ${estimate_usd:.4f}; it "
        f"resets at the {budget.period.value}'s end (UTC)",
        reason="BUDGET_EXCEEDED",
        retry_after=retry_after,
        metadata={"scope": budget.scope.value, "subject": budget.subject, "period": budget.period.value},
    )
