"""Prices over time: a model's base prices, and windows of the day (in a timezone) when others apply.

`PriceSchedule.at(now)` is on every call's path (routing by cost, budget estimates, billing), so it does no timezone
arithmetic while `now` stays inside the span it last computed: one comparison of floats. The span ends at the next
window boundary (or within the hour, which bounds the cost of a daylight-saving change), where the price in force
is worked out again once, whichever call comes first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
_RECHECK_S = 3600.0
"""The longest a computed span is trusted: a daylight-saving change inside it moves the boundaries' epoch times."""


@dataclass(frozen=True, slots=True)
class Prices:
    """US dollars per million tokens, as in force for one call."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None
    """None: cached prompt tokens bill at the input price."""
    window: str = ""
    """The price window that applied, e.g. '16:30-00:30 UTC'; empty for the model's base prices."""

    def record(self) -> dict[str, float | str | None]:
        """As the audit record keeps it."""
        return {
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "cached_input_per_mtok": self.cached_input_per_mtok,
            "window": self.window,
        }

    @property
    def effective_cached_per_mtok(self) -> float:
        return self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end) in minutes of the local day; end < start wraps past midnight."""

    start: int
    end: int
    prices: Prices

    def contains(self, minute: float) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end


class PriceSchedule:
    """A model's prices at any time. Windows do not overlap (the config refuses those that do) and share one
    timezone, so at most one applies at a time; outside them the base prices apply."""

    __slots__ = ("_base", "_boundaries", "_span", "_windows", "_zone")

    def __init__(self, base: Prices, windows: list[Window], zone: ZoneInfo | None) -> None:
        self._base = base
        self._windows = tuple(windows)
        self._zone = zone
        self._boundaries = sorted({minute for w in windows for minute in (w.start, w.end)})
        self._span: tuple[float, float, Prices] = (0.0, float("inf") if not windows else 0.0, base)
        """(from, until, prices): the prices in force from `from` (epoch seconds) until before `until`."""

    @property
    def scheduled(self) -> bool:
        return bool(self._windows)

    @property
    def base(self) -> Prices:
        return self._base

    def at(self, now: float) -> Prices:
        start, until, prices = self._span
        if start <= now < until:
            return prices
        self._span = span = self._compute(now)
        return span[2]

    def ceiling(self) -> Prices:
        """The dearest input and output prices of any time: what an estimate for a call that may wait uses."""
        every = [self._base, *(w.prices for w in self._windows)]
        return Prices(
            max(p.input_per_mtok for p in every),
            max(p.output_per_mtok for p in every),
            self._base.cached_input_per_mtok,
        )

    def next_cheaper(self, now: float, until: float, answer_share: float) -> float | None:
        """The first time in (now, until] at which the prices are below those at `now`, weighing output by
        `answer_share` of the tokens (input the rest); None when no cheaper price begins before `until`."""
        current = _blend(self.at(now), answer_share)
        moment = now
        while True:
            moment = self._compute(moment)[1]
            if moment > until:
                return None
            if _blend(self.at_uncached(moment), answer_share) < current:
                return moment

    def at_uncached(self, now: float) -> Prices:
        """As `at`, without moving the remembered span (for looking ahead)."""
        return self._compute(now)[2]

    def _compute(self, now: float) -> tuple[float, float, Prices]:
        if not self._windows:
            return (float("-inf"), float("inf"), self._base)
        local = dt.datetime.fromtimestamp(now, self._zone)
        # Windows start and end on whole minutes: the seconds never change which window holds or which boundary
        # is next.
        minute = local.hour * 60 + local.minute
        prices = next((w.prices for w in self._windows if w.contains(minute)), self._base)
        # Adding to an aware time adds wall time, as the boundaries are written.
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        later = [b for b in self._boundaries if b > minute] or [self._boundaries[0] + MINUTES_PER_DAY]
        boundary = (midnight + dt.timedelta(minutes=later[0])).timestamp()
        if boundary > now:
            return (now, min(boundary, now + _RECHECK_S), prices)
        # In the hour repeated when clocks go back, the boundary read on the wall clock may be its first time,
        # already past: the second may begin at any whole minute, so look again at the next one.
        return (now, now + 60.0 - local.second - local.microsecond / 1e6, prices)


def _blend(prices: Prices, answer_share: float) -> float:
    return (1 - answer_share) * prices.input_per_mtok + answer_share * prices.output_per_mtok
