"""Access decisions: may this key call this model now, from here, with this data? Pure logic over a key record and
what the transport knows about the call; every refusal says which rule refused and how to get through."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from gateway.errors import PermissionDenied
from gateway.policy.keyring import peer_host
from gateway.records.classification import Classification
from gateway.records.governance import Conditions, KeyRecord, Role

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def check_model(key: KeyRecord, model: str) -> None:
    if not key.may_call(model):
        raise PermissionDenied(
            f"key {key.id} may not call {model!r}; ask your team admin to add it to the key's models",
            reason="MODEL_NOT_ALLOWED",
            metadata={"model": model},
        )


def check_conditions(
    key: KeyRecord,
    *,
    peer: str,
    metadata: Mapping[str, str],
    classification: Classification,
    now: float,
) -> None:
    """The key's attribute conditions (ABAC); call only when `key.conditions` is not empty."""
    conditions = key.conditions
    if conditions.hours is not None or conditions.weekdays is not None:
        _check_time(key.id, conditions, now)
    if conditions.networks:
        _check_network(key.id, conditions, peer)
    for name, allowed in conditions.required_metadata:
        value = metadata.get(name)
        if not value:
            raise PermissionDenied(
                f"key {key.id} requires request metadata {name!r}"
                + (f" (one of: {', '.join(allowed)})" if allowed else ""),
                reason="METADATA_REQUIRED",
                metadata={"metadata": name},
            )
        if allowed and value not in allowed:
            raise PermissionDenied(
                f"key {key.id} does not allow {name}={value!r}; allowed: {', '.join(allowed)}",
                reason="METADATA_NOT_ALLOWED",
                metadata={"metadata": name},
            )
    if classification > conditions.max_classification:
        raise PermissionDenied(
            f"key {key.id} may send data up to {conditions.max_classification.label}, "
            f"and this request is {classification.label}",
            reason="CLASSIFICATION_NOT_ALLOWED",
            metadata={"classification": classification.label, "allowed": conditions.max_classification.label},
        )


def check_manages(caller: KeyRecord, team: str) -> None:
    """Admin API: admins manage every team, team admins their own, members nothing."""
    if caller.role is Role.ADMIN or (caller.role is Role.TEAM_ADMIN and caller.team == team):
        return
    if caller.role is Role.TEAM_ADMIN:
        raise PermissionDenied(
            f"key {caller.id} is a team admin of {caller.team!r}, not of {team!r}", reason="OTHER_TEAM"
        )
    raise PermissionDenied(f"key {caller.id} is not an admin key", reason="ADMIN_REQUIRED")


def check_admin(caller: KeyRecord) -> None:
    if caller.role is not Role.ADMIN:
        raise PermissionDenied(f"key {caller.id} is not an admin key", reason="ADMIN_REQUIRED")


def _check_time(key_id: str, conditions: Conditions, now: float) -> None:
    local = datetime.fromtimestamp(now, _zone(conditions.timezone))
    if conditions.weekdays is not None and local.weekday() not in conditions.weekdays:
        days = ", ".join(_WEEKDAYS[d] for d in sorted(conditions.weekdays))
        raise PermissionDenied(
            f"key {key_id} may be used on {days} ({conditions.timezone}); it is {_WEEKDAYS[local.weekday()]} there",
            reason="OUTSIDE_ALLOWED_TIME",
        )
    if conditions.hours is not None:
        start, end = conditions.hours
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            raise PermissionDenied(
                f"key {key_id} may be used {format_hours(conditions.hours)} ({conditions.timezone}); "
                f"it is {local:%H:%M} there",
                reason="OUTSIDE_ALLOWED_TIME",
            )


def _check_network(key_id: str, conditions: Conditions, peer: str) -> None:
    host = peer_host(peer)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not any(address in network for network in conditions.networks):
        raise PermissionDenied(
            f"key {key_id} may be used from {', '.join(str(n) for n in conditions.networks)}, not from {host or peer}",
            reason="NETWORK_NOT_ALLOWED",
        )


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_hours(text: str) -> tuple[int, int]:
    """'09:00-18:00' -> minutes of the day (540, 1080)."""
    try:
        start, end = (part.strip() for part in text.split("-"))
        return _minutes(start), _minutes(end)
    except ValueError:
        raise ValueError(f"hours must look like 09:00-18:00, got {text!r}") from None


def format_hours(hours: tuple[int, int]) -> str:
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in hours)


def _minutes(text: str) -> int:
    hours, _, minutes = text.partition(":")
    value = int(hours) * 60 + int(minutes or 0)
    if not 0 <= value <= 24 * 60:
        raise ValueError  # parse_hours says what hours should look like
    return value


def parse_weekdays(names: list[str]) -> frozenset[int]:
    days: set[int] = set()
    for name in names:
        short = name.strip().lower()[:3]
        if short not in _WEEKDAYS:
            raise ValueError(f"unknown weekday {name!r}; use mon, tue, wed, thu, fri, sat, sun")
        days.add(_WEEKDAYS.index(short))
    return frozenset(days)


def check_timezone(name: str) -> str:
    try:
        _zone(name)
    except (KeyError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris") from None
    return name
