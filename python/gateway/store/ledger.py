"""The ledger (one row per billed call) and the audit log (one row per call) in the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, and_, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.ledger.records import AuditFilter, AuditRecord, GroupBy, UsageFilter, UsageRow
from gateway.store.tables import audit, ledger

_GROUP_COLUMNS = {
    GroupBy.KEY: ledger.c.key_id,
    GroupBy.TEAM: ledger.c.team,
    GroupBy.MODEL: ledger.c.served_model,
    GroupBy.PROVIDER: ledger.c.provider,
}
_EXPORT_PAGE = 1000


class LedgerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def write(self, records: list[AuditRecord], *, with_audit: bool) -> None:
        """Commits the records' ledger entries, and with `with_audit` the records themselves, in one transaction."""
        entries = [_ledger_row(r) for r in records if r.billable]
        async with self._engine.begin() as conn:
            if entries:
                await conn.execute(ledger.insert(), entries)
            if with_audit and records:
                await conn.execute(audit.insert(), [asdict(r) for r in records])

    # --- usage ------------------------------------------------------------------------------------------------------

    async def usage(self, group_by: GroupBy, where: UsageFilter) -> list[UsageRow]:
        column = _GROUP_COLUMNS[group_by]
        query = (
            select(
                column.label("group"),
                func.count(),
                func.sum(ledger.c.prompt_tokens),
                func.sum(ledger.c.completion_tokens),
                func.sum(ledger.c.cached_tokens),
                func.sum(ledger.c.cost_usd),
            )
            .where(_usage_where(where))
            .group_by(column)
            .order_by(func.sum(ledger.c.cost_usd).desc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [UsageRow(str(g), int(n), int(p), int(c), int(k), float(cost)) for g, n, p, c, k, cost in rows]

    async def spend(self, where: UsageFilter) -> float:
        query = select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(_usage_where(where))
        async with self._engine.connect() as conn:
            return float((await conn.execute(query)).scalar_one())

    async def spend_by_subject(self, since: float) -> tuple[dict[str, float], dict[str, float]]:
        """Spend since a time, by key id and by team: what budgets start from."""
        async with self._engine.connect() as conn:
            by_key = await conn.execute(
                select(ledger.c.key_id, func.sum(ledger.c.cost_usd))
                .where(ledger.c.at >= since)
                .group_by(ledger.c.key_id)
            )
            keys = {k: float(v) for k, v in by_key.all()}
            by_team = await conn.execute(
                select(ledger.c.team, func.sum(ledger.c.cost_usd)).where(ledger.c.at >= since).group_by(ledger.c.team)
            )
            teams = {t: float(v) for t, v in by_team.all()}
        return keys, teams

    # --- audit ------------------------------------------------------------------------------------------------------

    async def query_audit(self, where: AuditFilter) -> list[AuditRecord]:
        query = select(audit).where(_audit_where(where)).order_by(audit.c.at.desc()).limit(where.limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_audit_from_row(row) for row in rows]

    async def export_audit(self, where: AuditFilter) -> AsyncIterator[AuditRecord]:
        """Every matching record, oldest first, a page at a time so an export of any size runs in bounded memory."""
        after: tuple[float, str] | None = None
        base = _audit_where(where)
        while True:
            query = select(audit).where(base)
            if after is not None:
                at, request_id = after
                query = query.where((audit.c.at > at) | and_(audit.c.at == at, audit.c.request_id > request_id))
            query = query.order_by(audit.c.at, audit.c.request_id).limit(_EXPORT_PAGE)
            async with self._engine.connect() as conn:
                rows = (await conn.execute(query)).mappings().all()
            for row in rows:
                yield _audit_from_row(row)
            if len(rows) < _EXPORT_PAGE:
                return
            after = (rows[-1]["at"], rows[-1]["request_id"])

    async def purge_audit(self, before: float, *, team: str | None = None, other_than: set[str] | None = None) -> int:
        """Deletes records older than `before`, of one team, or of every team but `other_than`. Returns the count."""
        condition = audit.c.at < before
        if team is not None:
            condition = condition & (audit.c.team == team)
        if other_than:
            condition = condition & audit.c.team.not_in(sorted(other_than))
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(audit).where(condition))
        return int(result.rowcount)


def _usage_where(where: UsageFilter) -> ColumnElement[bool]:
    condition = (ledger.c.at >= where.since) & (ledger.c.at < where.until)
    if where.team is not None:
        condition = condition & (ledger.c.team == where.team)
    if where.key_id is not None:
        condition = condition & (ledger.c.key_id == where.key_id)
    return condition


def _audit_where(where: AuditFilter) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if where.since is not None:
        conditions.append(audit.c.at >= where.since)
    if where.until is not None:
        conditions.append(audit.c.at < where.until)
    if where.team is not None:
        conditions.append(audit.c.team == where.team)
    if where.key_id is not None:
        conditions.append(audit.c.key_id == where.key_id)
    if where.request_id is not None:
        conditions.append(audit.c.request_id == where.request_id)
    if where.status is not None:
        conditions.append(audit.c.status == where.status)
    return and_(True, *conditions)


def _ledger_row(record: AuditRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "at": record.at,
        "key_id": record.key_id,
        "team": record.team,
        "model": record.model,
        "served_model": record.served_model,
        "provider": record.provider,
        "route": record.route,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "cost_usd": record.cost_usd,
        "kind": record.kind,
    }


def _audit_from_row(row: RowMapping) -> AuditRecord:
    return AuditRecord(**row)
