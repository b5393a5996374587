"""What the gateway knows about teams and keys: plain records, shared by the key ring, the Admin API and the store.

A key record never holds the key, only its SHA-256 and a short visible prefix for people to recognise it by.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from gateway.records.classification import Classification

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Role(StrEnum):
    ADMIN = "admin"
    """Manages everything."""
    TEAM_ADMIN = "team-admin"
    """Manages its own team's keys and budgets, and reads its usage and audit records."""
    MEMBER = "member"
    """Calls models."""


class BodyPolicy(StrEnum):
    """What of a call's request and answer its audit record keeps."""

    NONE = "none"
    REDACTED = "redacted"
    FULL = "full"


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class Conditions:
    """Attribute conditions (ABAC) a call must meet, beyond the key's model list."""

    hours: tuple[int, int] | None = None
    """Allowed minutes of the day [start, end) in `timezone`; end < start wraps past midnight."""
    weekdays: frozenset[int] | None = None
    """Allowed days, 0 = Monday."""
    timezone: str = "UTC"
    networks: tuple[Network, ...] = ()
    """Client networks the peer address must be in; empty allows any."""
    required_metadata: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Request metadata that must be present: (name, allowed values); no values means any non-empty value."""
    max_classification: Classification = Classification.RESTRICTED

    @property
    def empty(self) -> bool:
        return (
            self.hours is None
            and self.weekdays is None
            and not self.networks
            and not self.required_metadata
            and self.max_classification is Classification.RESTRICTED
        )


@dataclass(frozen=True, slots=True)
class KeyLimits:
    rpm: int | None = None
    tpm: int | None = None
    """Prompt tokens plus the answer's estimate per minute, corrected to the provider's usage."""
    max_concurrent: int | None = None

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None and self.max_concurrent is None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    """Public id (`key_…`), safe to log and show; how admins name a key."""
    prefix: str
    """The key's first characters, shown so people can tell their keys apart."""
    secret_hash: str
    team: str
    role: Role = Role.MEMBER
    name: str = ""
    models: frozenset[str] | None = None
    """Models and routes the key may call; None allows every one."""
    limits: KeyLimits = KeyLimits()
    conditions: Conditions = Conditions()
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    previous_hash: str | None = None
    """After a rotation, the old key's hash: it keeps working until `previous_valid_until`."""
    previous_valid_until: float | None = None
    updated_at: float = 0.0

    def may_call(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    bodies: BodyPolicy = BodyPolicy.NONE
    retention_days: int = 30
    labels: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0


class BudgetScope(StrEnum):
    KEY = "key"
    TEAM = "team"


@dataclass(frozen=True, slots=True)
class Budget:
    """Spend allowed to one key or team per day or month, in USD."""

    scope: BudgetScope
    subject: str
    """The key id or the team name."""
    period: Period
    hard_usd: float | None = None
    """Requests that would go over are refused before they reach a provider."""
    soft_usd: float | None = None
    """Past it, requests go to `downgrade_to` instead of the model they named."""
    downgrade_to: str | None = None
    updated_at: float = 0.0
