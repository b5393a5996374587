"""Ratings of calls in the database, one row per (call, metric, source), the profiles' shared sums and the
query-type clusters."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Subquery, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.database import dialect_insert
from gateway.store.tables import audit, feedback, profile_sums, query_clusters

if TYPE_CHECKING:  # a type only: at run time the store imports nothing above it (learning uses the store)
    from gateway.learning.profiles import RowKey


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


@dataclass(frozen=True, slots=True)
class RatedCall:
    """A learned route's call with its rating on one metric (the mean over sources when several rated it)."""

    request_id: str
    team: str
    learned: dict[str, Any]
    """The route's decision as the audit record keeps it (routing/learned.py, LearnedChoice.record)."""
    cost_usd: float
    latency_ms: float
    prompt_tokens: int
    value: float


def mean_ratings(metric: str) -> Subquery:
    """Per rated call, its mean rating on `metric` over the sources that gave one (columns request_id, value)."""
    return (
        select(feedback.c.request_id, func.avg(feedback.c.value).label("value"))
        .where(feedback.c.metric == metric)
        .group_by(feedback.c.request_id)
        .subquery()
    )


class FeedbackStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = dialect_insert(engine)

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

    async def rated_calls(
        self, route: str, metric: str, since: float, until: float, team: str | None = None
    ) -> list[RatedCall]:
        """The route's audited calls in [since, until) that have a learned decision and a rating on `metric`."""
        ratings = mean_ratings(metric)
        condition = (
            (audit.c.route == route) & (audit.c.at >= since) & (audit.c.at < until) & audit.c.learned.is_not(None)
        )
        if team is not None:
            condition = condition & (audit.c.team == team)
        query = (
            select(
                audit.c.request_id,
                audit.c.team,
                audit.c.learned,
                audit.c.cost_usd,
                audit.c.latency_ms,
                audit.c.prompt_tokens,
                ratings.c.value,
            )
            .join_from(audit, ratings, audit.c.request_id == ratings.c.request_id)
            .where(condition)
            .order_by(audit.c.at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [RatedCall(*row) for row in rows if row.learned]


class SqlProfileStore:
    """The profiles' sums in the database, shared by every worker and instance on it (learning/profiles.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = dialect_insert(engine)

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

    async def load(self, oldest: Mapping[str, float], floor: float) -> dict[RowKey, dict[str, float]]:
        rows_of = profile_sums.c
        async with self._engine.begin() as conn:
            # Older epochs weigh under 2^-16 of the newest evidence: dropped here, where every sync passes.
            for route, epoch in oldest.items():
                await conn.execute(delete(profile_sums).where(rows_of.route == route, rows_of.epoch < epoch))
            await conn.execute(delete(profile_sums).where(rows_of.route.not_in(list(oldest)), rows_of.epoch < floor))
            rows = (await conn.execute(select(profile_sums))).all()
        loaded: dict[RowKey, dict[str, float]] = {}
        for route, kind, model, epoch, name, value in rows:
            loaded.setdefault((route, kind, model, epoch), {})[name] = value
        return loaded


class SqlClusterStore:
    """The query-type clusters in the database, with their writer's lease (learning/clusters.py)."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._insert = dialect_insert(engine)
        self._clock = clock

    async def lead(self, route: str, owner: str, lease_s: float) -> bool:
        now = self._clock()
        claim = self._insert(query_clusters).values(route=route, owner=owner, lease_until=now + lease_s)
        renew = (
            update(query_clusters)
            .where(query_clusters.c.route == route)
            .where(or_(query_clusters.c.owner == owner, query_clusters.c.lease_until < now))
            .values(owner=owner, lease_until=now + lease_s)
        )
        async with self._engine.begin() as conn:
            await conn.execute(claim.on_conflict_do_nothing(index_elements=["route"]))
            return (await conn.execute(renew)).rowcount == 1

    async def save(self, route: str, owner: str, state: bytes) -> None:
        statement = (
            update(query_clusters)
            .where(query_clusters.c.route == route)
            .where(query_clusters.c.owner == owner)
            .values(state=state)
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)

    async def load(self, route: str) -> bytes | None:
        async with self._engine.connect() as conn:
            found = await conn.scalar(select(query_clusters.c.state).where(query_clusters.c.route == route))
        return bytes(found) if found is not None else None
