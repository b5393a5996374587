"""Keys, teams and budgets in the database, translated to and from the records in policy/records.py."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from sqlalchemy import RowMapping, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.records.classification import Classification
from gateway.records.governance import (
    BodyPolicy,
    Budget,
    BudgetScope,
    Conditions,
    KeyLimits,
    KeyRecord,
    Period,
    Role,
    Team,
)
from gateway.store.tables import budgets, keys, teams


class GovernanceStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # --- keys -------------------------------------------------------------------------------------------------------

    async def insert_key(self, key: KeyRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(keys.insert().values(_key_row(key)))

    async def replace_key(self, key: KeyRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(keys).where(keys.c.id == key.id).values(_key_row(key)))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(keys).where(keys.c.id == key_id))).mappings().first()
        return None if row is None else _key_from_row(row)

    async def list_keys(self, team: str | None = None, *, updated_since: float | None = None) -> list[KeyRecord]:
        query = select(keys).order_by(keys.c.created_at)
        if team is not None:
            query = query.where(keys.c.team == team)
        if updated_since is not None:
            query = query.where(keys.c.updated_at >= updated_since)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_key_from_row(row) for row in rows]

    # --- teams ------------------------------------------------------------------------------------------------------

    async def save_team(self, team: Team) -> None:
        """Inserts the team, or replaces it when one of that name exists."""
        row = {
            "name": team.name,
            "bodies": team.bodies.value,
            "retention_days": team.retention_days,
            "labels": team.labels,
            "created_at": team.created_at,
            "updated_at": team.updated_at,
        }
        async with self._engine.begin() as conn:
            found = await conn.execute(update(teams).where(teams.c.name == team.name).values(row))
            if found.rowcount == 0:
                await conn.execute(teams.insert().values(row))

    async def list_teams(self, *, updated_since: float | None = None) -> list[Team]:
        query = select(teams).order_by(teams.c.name)
        if updated_since is not None:
            query = query.where(teams.c.updated_at >= updated_since)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Team(
                name=row["name"],
                bodies=BodyPolicy(row["bodies"]),
                retention_days=row["retention_days"],
                labels=dict(row["labels"]),
                created_at=row["created_at"],
                updated_at=row["updated_at"],
            )
            for row in rows
        ]

    # --- budgets ----------------------------------------------------------------------------------------------------

    async def save_budget(self, budget: Budget) -> None:
        """Sets the budget of a key or team for a period; one with neither cap removes it."""
        where = (
            (budgets.c.scope == budget.scope.value)
            & (budgets.c.subject == budget.subject)
            & (budgets.c.period == budget.period.value)
        )
        values = {
            "hard_usd": budget.hard_usd,
            "soft_usd": budget.soft_usd,
            "downgrade_to": budget.downgrade_to,
            "updated_at": budget.updated_at,
        }
        async with self._engine.begin() as conn:
            found = await conn.execute(update(budgets).where(where).values(values))
            if found.rowcount == 0:
                await conn.execute(
                    budgets.insert().values(
                        scope=budget.scope.value, subject=budget.subject, period=budget.period.value, **values
                    )
                )

    async def delete_budget(self, scope: BudgetScope, subject: str, period: Period) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(budgets).where(
                    (budgets.c.scope == scope.value)
                    & (budgets.c.subject == subject)
                    & (budgets.c.period == period.value)
                )
            )

    async def list_budgets(self, *, updated_since: float | None = None) -> list[Budget]:
        query = select(budgets)
        if updated_since is not None:
            query = query.where(budgets.c.updated_at >= updated_since)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Budget(
                scope=BudgetScope(row["scope"]),
                subject=row["subject"],
                period=Period(row["period"]),
                hard_usd=row["hard_usd"],
                soft_usd=row["soft_usd"],
                downgrade_to=row["downgrade_to"],
                updated_at=row["updated_at"],
            )
            for row in rows
        ]


def _key_row(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "prefix": key.prefix,
        "secret_hash": key.secret_hash,
        "previous_hash": key.previous_hash,
        "previous_valid_until": key.previous_valid_until,
        "team": key.team,
        "role": key.role.value,
        "name": key.name,
        "models": None if key.models is None else sorted(key.models),
        "limits": {"rpm": key.limits.rpm, "tpm": key.limits.tpm, "max_concurrent": key.limits.max_concurrent},
        "conditions": conditions_to_json(key.conditions),
        "labels": key.labels,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "updated_at": key.updated_at,
    }


def _key_from_row(row: RowMapping) -> KeyRecord:
    limits = row["limits"]
    return KeyRecord(
        id=row["id"],
        prefix=row["prefix"],
        secret_hash=row["secret_hash"],
        team=row["team"],
        role=Role(row["role"]),
        name=row["name"],
        models=None if row["models"] is None else frozenset(row["models"]),
        limits=KeyLimits(limits.get("rpm"), limits.get("tpm"), limits.get("max_concurrent")),
        conditions=conditions_from_json(row["conditions"]),
        labels=dict(row["labels"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        previous_hash=row["previous_hash"],
        previous_valid_until=row["previous_valid_until"],
        updated_at=row["updated_at"],
    )


def conditions_to_json(conditions: Conditions) -> dict[str, Any]:
    return {
        "hours": list(conditions.hours) if conditions.hours is not None else None,
        "weekdays": sorted(conditions.weekdays) if conditions.weekdays is not None else None,
        "timezone": conditions.timezone,
        "networks": [str(n) for n in conditions.networks],
        "required_metadata": {name: list(values) for name, values in conditions.required_metadata},
        "max_classification": conditions.max_classification.label,
    }


def conditions_from_json(value: Mapping[str, Any]) -> Conditions:
    hours = value.get("hours")
    weekdays = value.get("weekdays")
    return Conditions(
        hours=(int(hours[0]), int(hours[1])) if hours is not None else None,
        weekdays=frozenset(weekdays) if weekdays is not None else None,
        timezone=value.get("timezone", "UTC"),
        networks=tuple(ipaddress.ip_network(n) for n in value.get("networks", ())),
        required_metadata=tuple((name, tuple(values)) for name, values in value.get("required_metadata", {}).items()),
        max_classification=Classification.parse(value.get("max_classification", "restricted")),
    )
