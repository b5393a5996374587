"""Ratings of calls in the database, one row per (call, metric, source), and the profiles' shared sums."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.learning.profiles import RowKey
from gateway.store.tables import feedback, profile_sums


@dataclass(frozen=True, slots=True)
class Rating:
    request_id: str
    metric: str
    source: str
    value: float
    label: str
    comment: str
    key_id: str
    team: str
    at: float


def _insert(engine: AsyncEngine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL spell it the same)."""
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


class FeedbackStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = _insert(engine)

    async def put(self, rating: Rating) -> float | None:
        """Stores the rating, replacing the same source's rating of the same metric of the same call. Returns the
        value it replaced (None when it is the first)."""
        values = {
            "request_id": rating.request_id,
            "metric": rating.metric,
            "source": rating.source,
            "value": rating.value,
            "previous": None,
            "label": rating.label,
            "comment": rating.comment,
            "key_id": rating.key_id,
            "team": rating.team,
            "at": rating.at,
        }
        statement = self._insert(feedback).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["request_id", "metric", "source"],
            set_={
                "previous": feedback.c.value,
                "value": statement.excluded.value,
                "label": statement.excluded.label,
                "comment": statement.excluded.comment,
                "key_id": statement.excluded.key_id,
                "at": statement.excluded.at,
            },
        ).returning(feedback.c.previous)
        async with self._engine.begin() as conn:
            previous = (await conn.execute(statement)).scalar_one()
        return None if previous is None else float(previous)

    async def of_call(self, request_id: str) -> list[Rating]:
        query = select(feedback).where(feedback.c.request_id == request_id).order_by(feedback.c.metric)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Rating(
                r["request_id"],
                r["metric"],
                r["source"],
                r["value"],
                r["label"],
                r["comment"],
                r["key_id"],
                r["team"],
                r["at"],
            )
            for r in rows
        ]


class SqlProfileStore:
    """The profiles' sums in the database, shared by every worker and instance on it (learning/profiles.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = _insert(engine)

    async def add(self, rows: Mapping[RowKey, Mapping[str, float]]) -> None:
        values = [
            {"route": route, "query_type": kind, "model": model, "epoch": epoch, "field": name, "value": value}
            for (route, kind, model, epoch), fields in rows.items()
            for name, value in fields.items()
        ]
        if not values:
            return
        statement = self._insert(profile_sums)
        statement = statement.on_conflict_do_update(
            index_elements=["route", "query_type", "model", "epoch", "field"],
            set_={"value": profile_sums.c.value + statement.excluded.value},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement, values)

    async def load(self, since_epoch: float) -> dict[RowKey, dict[str, float]]:
        async with self._engine.begin() as conn:
            # Older epochs weigh under 2^-16 of the newest evidence: dropped here, where every sync passes.
            await conn.execute(delete(profile_sums).where(profile_sums.c.epoch < since_epoch))
            rows = (await conn.execute(select(profile_sums))).all()
        loaded: dict[RowKey, dict[str, float]] = {}
        for route, kind, model, epoch, name, value in rows:
            loaded.setdefault((route, kind, model, epoch), {})[name] = value
        return loaded
