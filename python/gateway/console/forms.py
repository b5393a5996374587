"""Console forms into domain values, refusing what the Admin API would refuse with the same kind of error."""

from __future__ import annotations

from typing import Any

from multidict import MultiDictProxy

from gateway.errors import InvalidRequest
from gateway.ledger.periods import parse_duration
from gateway.records.governance import Budget, BudgetScope, KeyLimits, KeyRecord, Period, Role
from gateway.server.admin_convert import parse_enum

Form = MultiDictProxy[Any]
"""A posted form (aiohttp's `request.post()`)."""


def text(form: Form, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def optional_int(form: Form, name: str) -> int | None:
    value = text(form, name)
    if not value:
        return None
    if not value.isdigit():
        raise InvalidRequest(f"{name} must be a whole number of 0 or more, or empty for no limit")
    return int(value)


def optional_usd(form: Form, name: str) -> float | None:
    value = text(form, name)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an amount in US dollars, e.g. 25 or 12.50") from None


def at_least(value: str, name: str) -> float:
    """A filter's lower bound from the query string: a number of 0 or more; empty for none (0)."""
    if not value:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number >= 0:  # also NaN, which would filter out every call
        raise InvalidRequest(f"{name} must be a number of 0 or more, or empty for no bound")
    return number


def duration_s(value: str, default_s: float) -> float:
    """'30d', '12h', '15m' in seconds; empty for the default."""
    if not value:
        return default_s
    try:
        return parse_duration(value)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None


def limits(form: Form) -> KeyLimits:
    return KeyLimits(
        rpm=optional_int(form, "rpm"), tpm=optional_int(form, "tpm"), max_concurrent=optional_int(form, "concurrent")
    )


def models(form: Form) -> frozenset[str] | None:
    names = [m.strip() for m in text(form, "models").split(",") if m.strip()]
    return frozenset(names) if names else None


def key_draft(form: Form, caller: KeyRecord) -> KeyRecord:
    return KeyRecord(
        id="",
        prefix="",
        secret_hash="",
        team=text(form, "team") or caller.team,
        role=parse_enum(Role, text(form, "role"), "role", Role.MEMBER),
        name=text(form, "name"),
        models=models(form),
        limits=limits(form),
    )


def budget(form: Form, scope: BudgetScope, subject: str) -> Budget:
    return Budget(
        scope=scope,
        subject=subject,
        period=parse_enum(Period, text(form, "period"), "period", Period.MONTH),
        hard_usd=optional_usd(form, "hard_usd"),
        soft_usd=optional_usd(form, "soft_usd"),
        downgrade_to=text(form, "downgrade_to") or None,
    )
