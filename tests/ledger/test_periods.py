"""Budget periods in UTC: a day's and a month's bounds, at their first and last instants and across a year's end."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from gateway.ledger.periods import parse_duration, period_bounds
from gateway.records.governance import Period


def utc(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2025, 3, 10, 12, 30), utc(2025, 3, 10), utc(2025, 3, 11)),
        (utc(2025, 3, 10), utc(2025, 3, 10), utc(2025, 3, 11)),  # a day starts at its first instant
        (utc(2025, 3, 10) - 0.001, utc(2025, 3, 9), utc(2025, 3, 10)),  # and the one before ends there
        (utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 31), utc(2025, 1, 1)),
    ],
)
def test_a_day_runs_from_midnight_to_midnight_utc(now: float, start: float, end: float) -> None:
    assert period_bounds(Period.DAY, now) == (start, end)


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2025, 3, 10, 12, 30, 15), utc(2025, 3, 1), utc(2025, 4, 1)),
        (utc(2025, 3, 1), utc(2025, 3, 1), utc(2025, 4, 1)),
        (utc(2025, 3, 1) - 0.001, utc(2025, 2, 1), utc(2025, 3, 1)),
        (utc(2024, 2, 29, 23), utc(2024, 2, 1), utc(2024, 3, 1)),
        (utc(2024, 12, 31, 23, 59, 59), utc(2024, 12, 1), utc(2025, 1, 1)),  # December ends in the next year
        (utc(2025, 1, 15), utc(2025, 1, 1), utc(2025, 2, 1)),
        (utc(2025, 11, 30, 1, 2, 3), utc(2025, 11, 1), utc(2025, 12, 1)),
    ],
)
def test_a_month_runs_from_its_first_day_to_the_next_months_utc(now: float, start: float, end: float) -> None:
    assert period_bounds(Period.MONTH, now) == (start, end)


def test_periods_are_utc_whatever_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "<+13>-13")  # POSIX for UTC+13 (no tz database needed): local time is the next day
    time.tzset()
    try:
        assert period_bounds(Period.MONTH, utc(2025, 3, 31, 12)) == (utc(2025, 3, 1), utc(2025, 4, 1))
        assert period_bounds(Period.DAY, utc(2025, 3, 31, 12)) == (utc(2025, 3, 31), utc(2025, 4, 1))
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("12h", 43_200), ("7d", 604_800), ("2w", 1_209_600), (" 1.5h ", 5400)],
)
def test_a_duration_reads_its_number_in_its_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7 d", "-7d", "7y", "7dd", "x7d", "1.d"])
def test_anything_else_is_not_a_duration_and_the_error_says_what_is(text: str) -> None:
    message = f"{text!r} is not a duration such as 30s, 15m, 12h, 7d or 2w"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_duration(text)
