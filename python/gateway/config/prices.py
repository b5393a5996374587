"""Time-of-day prices: windows of the day, in a timezone, when a model's prices differ from its base prices (a
provider's off-peak discount)."""

from __future__ import annotations

import re
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from gateway.config.base import Strict
from gateway.records.prices import MINUTES_PER_DAY, Prices, PriceSchedule, Window

_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class PriceWindow(Strict):
    """Prices that apply from `hours`' start (included) to its end (excluded), every day, in `timezone`."""

    hours: str = Field(description="HH:MM-HH:MM, e.g. 16:30-00:30 (an end before the start wraps past midnight).")
    timezone: str = Field(default="UTC", description="An IANA timezone, e.g. UTC, America/New_York.")
    input_cost_per_mtok: float | None = Field(default=None, ge=0, description="Unset: the model's.")
    output_cost_per_mtok: float | None = Field(default=None, ge=0, description="Unset: the model's.")
    cached_input_cost_per_mtok: float | None = Field(default=None, ge=0, description="Unset: the model's.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        self.minutes()
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {self.timezone!r} is not an IANA timezone (e.g. UTC, Europe/Paris, America/New_York)"
            ) from None
        prices = (self.input_cost_per_mtok, self.output_cost_per_mtok, self.cached_input_cost_per_mtok)
        if all(price is None for price in prices):
            raise ValueError(f"price window {self.hours}: set at least one of the input, output and cached prices")
        return self

    def minutes(self) -> tuple[int, int]:
        """(start, end) in minutes of the day."""
        found = _HOURS.match(self.hours)
        if found is None:
            raise ValueError(f"hours {self.hours!r}: write HH:MM-HH:MM, e.g. 16:30-00:30")
        hour_a, minute_a, hour_b, minute_b = (int(g) for g in found.groups())
        for hour, minute in ((hour_a, minute_a), (hour_b, minute_b)):
            if not (hour < 24 and minute < 60) and (hour, minute) != (24, 0):
                raise ValueError(f"hours {self.hours!r}: {hour:02}:{minute:02} is not a time of day")
        start, end = (hour_a * 60 + minute_a) % MINUTES_PER_DAY, (hour_b * 60 + minute_b) % MINUTES_PER_DAY
        if start == end:
            raise ValueError(
                f"hours {self.hours!r}: a window must be shorter than a day and longer than nothing; for prices "
                "all day long set the model's own prices"
            )
        return start, end

    @property
    def label(self) -> str:
        return f"{self.hours} {self.timezone}"


def check_windows(windows: list[PriceWindow]) -> None:
    """One timezone per model (a daylight-saving change would make windows in two zones overlap on some days only),
    and no two windows overlapping: the error names both and the minutes they share."""
    zones = sorted({w.timezone for w in windows})
    if len(zones) > 1:
        raise ValueError(f"prices: windows in several timezones ({', '.join(zones)}); give them all one timezone")
    for index, first in enumerate(windows):
        for second in windows[index + 1 :]:
            shared = _shared(first, second)
            if shared is not None:
                raise ValueError(
                    f"prices: windows {first.hours} and {second.hours} ({first.timezone}) overlap from "
                    f"{_clock(shared[0])} to {_clock(shared[1])}; at most one window may apply at a time"
                )


def schedule(base: Prices, windows: list[PriceWindow]) -> PriceSchedule:
    """The schedule of a model whose windows passed `check_windows`; unset window prices are the base's."""
    built = [
        Window(
            *w.minutes(),
            Prices(
                base.input_per_mtok if w.input_cost_per_mtok is None else w.input_cost_per_mtok,
                base.output_per_mtok if w.output_cost_per_mtok is None else w.output_cost_per_mtok,
                base.cached_input_per_mtok if w.cached_input_cost_per_mtok is None else w.cached_input_cost_per_mtok,
                w.label,
            ),
        )
        for w in windows
    ]
    return PriceSchedule(base, built, ZoneInfo(windows[0].timezone) if windows else None)


def _shared(first: PriceWindow, second: PriceWindow) -> tuple[int, int] | None:
    a, b = _spans(first), _spans(second)
    for start_a, end_a in a:
        for start_b, end_b in b:
            start, end = max(start_a, start_b), min(end_a, end_b)
            if start < end:
                return start, end
    return None


def _spans(window: PriceWindow) -> list[tuple[int, int]]:
    start, end = window.minutes()
    return [(start, end)] if start < end else [(start, MINUTES_PER_DAY), (0, end)]


def _clock(minute: int) -> str:
    return f"{minute // 60 % 24:02}:{minute % 60:02}"
