"""The budget book's arithmetic with a fake clock: which budgets govern a key, where a hard cap refuses, what a
settlement gives back, when a period starts again, when a soft cap downgrades and what a cap still allows.

The gRPC tests beside this file (test_budget_caps.py, test_budgets_and_usage.py) hold the same promises end to end;
these pin the edges (a call that lands exactly on a cap, a period's last second, a month cap under a day cap) that a
call through the server reaches only by chance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.errors import RateLimited
from gateway.ledger.budgets import BudgetBook
from gateway.records.governance import Budget, BudgetScope, KeyRecord, Period

NOON = datetime(2025, 3, 10, 12, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2025, 3, 11, tzinfo=UTC).timestamp()
MONTH_END = datetime(2025, 4, 1, tzinfo=UTC).timestamp()
KEY = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h1", team="shop")
TEAMMATE = KeyRecord(id="key_2", prefix="gw-def", secret_hash="h2", team="shop")
STRANGER = KeyRecord(id="key_3", prefix="gw-ghi", secret_hash="h3", team="other")


def key_cap(hard: float | None = None, period: Period = Period.DAY, **extra: object) -> Budget:
    return Budget(BudgetScope.KEY, KEY.id, period, hard_usd=hard, **extra)  # type: ignore[arg-type]


def team_cap(hard: float | None = None, period: Period = Period.DAY, **extra: object) -> Budget:
    return Budget(BudgetScope.TEAM, KEY.team, period, hard_usd=hard, **extra)  # type: ignore[arg-type]


def book(*budgets: Budget, now: list[float] | None = None) -> BudgetBook:
    clock = now if now is not None else [NOON]
    made = BudgetBook(clock=lambda: clock[0])
    for budget in budgets:
        made.set_budget(budget)
    return made


def refusal(book: BudgetBook, key: KeyRecord, estimate: float) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        book.reserve(key, estimate)
    assert caught.value.reason == "BUDGET_EXCEEDED"
    return caught.value


def test_set_budget_says_when_a_subject_becomes_governed_and_removes_with_neither_cap() -> None:
    budgets = BudgetBook(clock=lambda: NOON)
    assert not budgets.governs(KEY)
    assert budgets.set_budget(key_cap(1.0)) is True  # its spend so far must be loaded
    assert budgets.set_budget(key_cap(2.0, Period.MONTH)) is False  # already governed
    assert budgets.set_budget(Budget(BudgetScope.KEY, KEY.id, Period.DAY, soft_usd=0.5)) is False
    assert budgets.governs(KEY)
    assert not budgets.governs(TEAMMATE)
    assert {(b.period, b.hard_usd, b.soft_usd) for b in budgets.budgets()} == {
        (Period.DAY, None, 0.5),
        (Period.MONTH, 2.0, None),
    }
    assert budgets.set_budget(key_cap(None, Period.DAY)) is False  # removes the day budget only
    assert [b.period for b in budgets.budgets_of(BudgetScope.KEY, KEY.id)] == [Period.MONTH]
    assert budgets.governs(KEY)
    budgets.set_budget(key_cap(None, Period.MONTH))
    assert budgets.budgets() == []
    assert not budgets.governs(KEY)  # the key's calls skip estimating again
    assert budgets.set_budget(key_cap(1.0)) is True  # governed anew: its spend must be loaded again
    assert budgets.set_budget(key_cap(None, Period.MONTH)) is False  # removing what is not there keeps the rest
    assert budgets.governs(KEY)
    assert budgets.set_budget(team_cap(None)) is False  # nor for a subject that never had a budget
    assert budgets.budgets() == [key_cap(1.0)]


def test_a_team_budget_governs_every_key_of_the_team_and_no_other() -> None:
    budgets = book(team_cap(1.0))
    assert budgets.governs(KEY)
    assert budgets.governs(TEAMMATE)
    assert not budgets.governs(STRANGER)


def test_a_hard_cap_admits_a_call_that_lands_exactly_on_it_and_refuses_one_cent_more() -> None:
    budgets = book(key_cap(1.0))
    budgets.load_spend(BudgetScope.KEY, KEY.id, Period.DAY, 0.5)
    first = budgets.reserve(KEY, 0.25)
    err = refusal(budgets, KEY, 0.26)  # 0.5 spent + 0.25 in flight + 0.26 > 1.0
    assert err.metadata == {"scope": "key", "subject": KEY.id, "period": "day"}
    assert err.retry_after == MIDNIGHT - NOON
    assert err.message == (
        "the daily budget of key key_1 ($1.00) would be exceeded: $0.5000 spent, $0.2500 in flight, this call up to "
        "$0.2600; it resets at the day's end (UTC)"
    )
    budgets.reserve(KEY, 0.25)  # exactly the cap: admitted
    refusal(budgets, KEY, 0.01)
    budgets.settle(first, 0.125)  # the call cost less than its estimate: the difference is free again
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.625
    budgets.reserve(KEY, 0.125)
    refusal(budgets, KEY, 0.01)


def test_a_refusal_reserves_nothing_on_any_account() -> None:
    """The key's day cap has room, the team's month cap has not: the call is refused, and the key's account keeps
    no reservation of it."""
    budgets = book(key_cap(1.0), team_cap(0.3, Period.MONTH))
    budgets.reserve(TEAMMATE, 0.25)
    err = refusal(budgets, KEY, 0.1)
    assert err.metadata == {"scope": "team", "subject": "shop", "period": "month"}
    assert err.retry_after == MONTH_END - NOON
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 1.0
    assert budgets.remaining(BudgetScope.TEAM, "shop") == pytest.approx(0.05)
    budgets.reserve(KEY, 0.05)  # what the team has left


def test_a_call_reserves_on_the_key_and_its_team_for_every_period() -> None:
    budgets = book(key_cap(1.0), key_cap(5.0, Period.MONTH), team_cap(2.0), team_cap(10.0, Period.MONTH))
    reservation = budgets.reserve(KEY, 0.5)
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.5
    assert budgets.remaining(BudgetScope.TEAM, "shop") == 1.5
    budgets.settle(reservation, 0.75)  # more than estimated: all of it is spent, on every account
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.75
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.MONTH) == 0.75
    assert budgets.spent(BudgetScope.TEAM, "shop", Period.DAY) == 0.75
    assert budgets.spent(BudgetScope.TEAM, "shop", Period.MONTH) == 0.75
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.25
    assert budgets.remaining(BudgetScope.TEAM, "shop") == 1.25


def test_remaining_is_the_tightest_hard_cap_and_none_without_one() -> None:
    budgets = book(key_cap(5.0, Period.MONTH), key_cap(1.0), team_cap(None, soft_usd=1.0))
    budgets.load_spend(BudgetScope.KEY, KEY.id, Period.MONTH, 4.5)
    budgets.load_spend(BudgetScope.KEY, KEY.id, Period.DAY, 0.25)
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.5  # the month's 0.5 is tighter than the day's 0.75
    budgets.reserve(KEY, 0.125)
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.375
    assert budgets.remaining(BudgetScope.TEAM, "shop") is None  # a soft cap only
    assert budgets.remaining(BudgetScope.TEAM, "other") is None


def test_settle_never_leaves_a_negative_reservation_and_ignores_ungoverned_calls() -> None:
    budgets = book(key_cap(1.0))
    reservation = budgets.reserve(KEY, 0.5)
    budgets.update(key_cap(1.0), 0.0, 0.0)  # a shared store says nothing is in flight any more
    budgets.settle(reservation, 0.25)
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.75
    budgets.settle(None, 5.0)  # a call no budget governed
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.25


def test_update_sets_what_a_shared_store_holds() -> None:
    budgets = book(key_cap(1.0))
    budgets.update(key_cap(1.0), 0.25, 0.5)
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.25
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.25


def test_a_new_day_starts_from_nothing_and_keeps_the_calls_in_flight() -> None:
    clock = [NOON]
    budgets = book(key_cap(1.0), key_cap(10.0, Period.MONTH), now=clock)
    budgets.load_spend(BudgetScope.KEY, KEY.id, Period.DAY, 0.75)
    budgets.load_spend(BudgetScope.KEY, KEY.id, Period.MONTH, 2.0)
    in_flight = budgets.reserve(KEY, 0.25)
    clock[0] = MIDNIGHT - 0.001
    refusal(budgets, KEY, 0.01)  # still the same day
    clock[0] = MIDNIGHT
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.0
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.MONTH) == 2.0  # the month goes on
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.75  # the new day's 1 - 0.25 still in flight
    refusal(budgets, KEY, 0.76)
    budgets.settle(in_flight, 0.25)
    assert budgets.spent(BudgetScope.KEY, KEY.id, Period.DAY) == 0.25  # settled into the day it ended in
    assert budgets.remaining(BudgetScope.KEY, KEY.id) == 0.75
    err = refusal(budgets, KEY, 0.76)
    assert err.retry_after == 86_400  # the new day's end


def test_capped_lists_the_key_and_team_budgets_with_their_periods_bounds() -> None:
    budgets = book(key_cap(1.0), team_cap(5.0, Period.MONTH))
    assert budgets.capped(KEY) == [
        (key_cap(1.0), datetime(2025, 3, 10, tzinfo=UTC).timestamp(), MIDNIGHT),
        (team_cap(5.0, Period.MONTH), datetime(2025, 3, 1, tzinfo=UTC).timestamp(), MONTH_END),
    ]
    assert budgets.capped(STRANGER) == []


@pytest.mark.parametrize("scope", [BudgetScope.KEY, BudgetScope.TEAM])
def test_a_soft_cap_downgrades_once_spend_and_calls_in_flight_reach_it(scope: BudgetScope) -> None:
    subject = KEY.id if scope is BudgetScope.KEY else KEY.team
    soft = Budget(scope, subject, Period.DAY, soft_usd=1.0, downgrade_to="cheap")
    budgets = book(soft)
    budgets.load_spend(scope, subject, Period.DAY, 0.5)
    assert budgets.downgrade(KEY) is None
    budgets.reserve(KEY, 0.25)
    assert budgets.downgrade(KEY) is None  # 0.75 < 1.0
    budgets.reserve(KEY, 0.25)
    assert budgets.downgrade(KEY) == "cheap"  # reached, with half of it still in flight
    assert budgets.downgrade(STRANGER) is None


def test_a_soft_cap_without_a_model_to_downgrade_to_downgrades_nothing() -> None:
    budgets = book(
        Budget(BudgetScope.KEY, KEY.id, Period.DAY, soft_usd=0.0),
        Budget(BudgetScope.TEAM, KEY.team, Period.DAY, hard_usd=5.0, downgrade_to="cheap"),  # no soft cap
        Budget(BudgetScope.TEAM, KEY.team, Period.MONTH, soft_usd=0.0, downgrade_to="cheaper"),
    )
    assert budgets.downgrade(KEY) == "cheaper"  # the one budget with both a soft cap and a model
