"""What the correlation analytics read: the facts of answered calls with their mean rating on one metric, and the
answered shadow copies with the type of the call they copied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.records.audit import SHADOW_KIND
from gateway.store.feedback import mean_ratings
from gateway.store.tables import audit, shadow_calls


@dataclass(frozen=True, slots=True)
class CallRow:
    model: str
    at: float
    prompt_tokens: int
    learned: dict[str, Any] | None
    latency_ms: float
    cost_usd: float
    rating: float | None
    """The mean over sources of the call's rating on the metric asked for, as given (not scaled)."""


@dataclass(frozen=True, slots=True)
class ShadowRow:
    learned: dict[str, Any] | None
    """The copied call's learned decision, if its route is learned."""
    model: str
    shadow_model: str
    similarity: float


class AnalyticsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def calls(
        self, since: float, until: float, team: str | None, route: str | None, metric: str, limit: int
    ) -> list[CallRow]:
        """The latest `limit` calls a provider answered in [since, until) (no cache hits, no shadow copies)."""
        ratings = mean_ratings(metric)
        query = (
            select(
                audit.c.served_model,
                audit.c.at,
                audit.c.prompt_tokens,
                audit.c.learned,
                audit.c.latency_ms,
                audit.c.cost_usd,
                ratings.c.value,
            )
            .join_from(audit, ratings, audit.c.request_id == ratings.c.request_id, isouter=True)
            .where(_answered(since, until, team, route))
            .order_by(audit.c.at.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [CallRow(*row) for row in rows]

    async def shadows(self, since: float, until: float, team: str | None, route: str | None) -> list[ShadowRow]:
        c = shadow_calls.c
        condition = (c.at >= since) & (c.at < until) & (c.status == "OK") & c.similarity.is_not(None)
        if team is not None:
            condition = condition & (c.team == team)
        if route is not None:
            condition = condition & (c.route == route)
        query = (
            select(audit.c.learned, c.primary_model, c.shadow_model, c.similarity)
            .join_from(shadow_calls, audit, audit.c.request_id == c.request_id)
            .where(condition)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ShadowRow(*row) for row in rows]


def _answered(since: float, until: float, team: str | None, route: str | None) -> ColumnElement[bool]:
    condition = (
        (audit.c.at >= since)
        & (audit.c.at < until)
        & (audit.c.status == "OK")
        & (audit.c.kind != SHADOW_KIND)
        & (audit.c.served_model != "")
        & audit.c.cache.is_(None)
    )
    if team is not None:
        condition = condition & (audit.c.team == team)
    return condition if route is None else condition & (audit.c.route == route)
