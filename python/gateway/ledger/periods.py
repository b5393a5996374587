"""Budget periods in UTC: where the current day or month starts and ends."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from gateway.records.governance import Period

_DAY_S = 86_400.0


def period_bounds(period: Period, now: float) -> tuple[float, float]:
    if period is Period.DAY:
        start = now - now % _DAY_S
        return start, start + _DAY_S
    moment = datetime.fromtimestamp(now, UTC)
    start_dt = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end_dt = (
        start_dt.replace(year=start_dt.year + 1, month=1)
        if start_dt.month == 12
        else start_dt.replace(month=start_dt.month + 1)
    )
    return start_dt.timestamp(), end_dt.timestamp()


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> float:
    """'30s', '15m', '12h', '7d', '2w' in seconds (how far back a report, query or export reaches)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 12h, 7d or 2w")
    return float(match.group(1)) * _UNIT_S[match.group(2)]
