"""Shadow calls' comparisons in the database: one row per mirrored call, what the shadow budgets are read from, and
the summaries `GetAnalytics` and `gateway shadow report` show."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.tables import shadow_calls

OK = "OK"
OVER_BUDGET = "OVER_BUDGET"
"""The route's shadow budget for the day was spent: the call was not mirrored."""
BUSY = "BUSY"
"""The route had as many copies under way as it may (insights/shadow.py MAX_IN_FLIGHT): the call was not mirrored."""


@dataclass(frozen=True, slots=True)
class ShadowCall:
    request_id: str
    """The primary call's."""
    at: float
    route: str
    team: str
    primary_model: str
    shadow_model: str
    shadow_request_id: str
    """The shadow call's audit record; empty when it was not sent (over budget, busy)."""
    status: str
    """OK, the gRPC status name the shadow call ended with, OVER_BUDGET or BUSY."""
    sent: bool
    """The copy reached the shadow's provider (the gateway's policies let it through, within the budget)."""
    reason: str
    primary_latency_ms: float
    shadow_latency_ms: float
    primary_cost_usd: float
    shadow_cost_usd: float
    similarity: float | None


@dataclass(frozen=True, slots=True)
class ShadowSummary:
    """Per (route, primary model, shadow model) over a range."""

    route: str
    primary_model: str
    shadow_model: str
    mirrored: int
    """Calls whose copy went out (answered or failed at the shadow's provider)."""
    answered: int
    refused: int
    """Copies the gateway's policies kept from the shadow model (key access, residency, guardrails): not mirrored."""
    failed: int
    over_budget: int
    busy: int
    """Calls picked for a copy while the route had MAX_IN_FLIGHT copies under way: not mirrored."""
    primary_latency_ms: float
    """Means over the answered copies, and the primary calls they copied."""
    shadow_latency_ms: float
    primary_cost_usd: float
    """Sums over the answered copies."""
    shadow_cost_usd: float
    similarity: float
    """Mean word cosine of the answered copies' answers to the primaries'."""


class ShadowStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, call: ShadowCall) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(shadow_calls.insert().values(asdict(call)))

    async def spent(self, route: str, since: float) -> float:
        query = select(func.coalesce(func.sum(shadow_calls.c.shadow_cost_usd), 0.0)).where(
            (shadow_calls.c.route == route) & (shadow_calls.c.at >= since)
        )
        async with self._engine.connect() as conn:
            return float((await conn.execute(query)).scalar_one())

    async def summaries(
        self, since: float, until: float, *, team: str | None = None, route: str | None = None
    ) -> list[ShadowSummary]:
        c = shadow_calls.c
        condition: ColumnElement[bool] = (c.at >= since) & (c.at < until)
        if team is not None:
            condition = condition & (c.team == team)
        if route is not None:
            condition = condition & (c.route == route)
        answered = c.status == OK

        def count(when: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((when, 1), else_=0))

        def over_answered(column: ColumnElement[float]) -> ColumnElement[float]:
            return func.coalesce(func.sum(case((answered, column), else_=0.0)), 0.0)

        sent, over, busy = c.sent.is_(True), c.status == OVER_BUDGET, c.status == BUSY
        query = (
            select(
                c.route,
                c.primary_model,
                c.shadow_model,
                count(sent),
                count(answered),
                count(~sent & ~over & ~busy),
                count(sent & ~answered),
                count(over),
                count(busy),
                over_answered(c.primary_latency_ms),
                over_answered(c.shadow_latency_ms),
                over_answered(c.primary_cost_usd),
                over_answered(c.shadow_cost_usd),
                func.coalesce(func.sum(c.similarity), 0.0),
            )
            .where(condition)
            .group_by(c.route, c.primary_model, c.shadow_model)
            .order_by(c.route, c.primary_model, c.shadow_model)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        summaries = []
        for (
            route_name,
            primary,
            shadow,
            mirrored,
            ok,
            refusals,
            failed,
            over,
            busy_,
            p_ms,
            s_ms,
            p_usd,
            s_usd,
            sim,
        ) in rows:
            n = int(ok or 0)
            summaries.append(
                ShadowSummary(
                    route_name,
                    primary,
                    shadow,
                    int(mirrored or 0),
                    n,
                    int(refusals or 0),
                    int(failed or 0),
                    int(over or 0),
                    int(busy_ or 0),
                    float(p_ms) / n if n else 0.0,
                    float(s_ms) / n if n else 0.0,
                    float(p_usd),
                    float(s_usd),
                    float(sim) / n if n else 0.0,
                )
            )
        return summaries
