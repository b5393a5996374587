"""The ledger (calls summed per key, model, provider, route and batch) and the audit log (one row per call) in the
database."""

from __future__ import annotations

import asyncio
import operator
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import JSON, ColumnElement, Dialect, RowMapping, Table, and_, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from gateway.records.audit import SHADOW_KIND, AuditFilter, AuditRecord, GroupBy, UsageFilter, UsageRow
from gateway.store.database import writer_engine
from gateway.store.tables import audit, ledger

_GROUP_COLUMNS = {
    GroupBy.KEY: ledger.c.key_id,
    GroupBy.TEAM: ledger.c.team,
    GroupBy.MODEL: ledger.c.served_model,
    GroupBy.PROVIDER: ledger.c.provider,
}
_EXPORT_PAGE = 1000
_DEFERRED_SUMS = (
    func.sum(ledger.c.deferred_calls),
    func.sum(ledger.c.deferred_cost_usd),
    func.sum(ledger.c.deferred_interactive_usd),
)


def _deferred(sums: Sequence[Any]) -> tuple[int, float, float]:
    calls, cost, interactive = sums
    return int(calls), float(cost), float(interactive)


class LedgerStore:
    def __init__(self, engine: AsyncEngine, *, synchronous_full: bool = False) -> None:
        self._engine = engine
        # Batches are written by the driver itself in a thread of its own, on one DB-API connection kept for it.
        self._writer = writer_engine(engine, synchronous_full=synchronous_full)
        self._writer_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        self._connection: PoolProxiedConnection | None = None
        """The writer thread's connection; touched only in that thread."""
        self._ledger_insert = _DriverInsert(ledger, self._writer.dialect)
        self._audit_insert = _DriverInsert(audit, self._writer.dialect)

    def close(self) -> None:
        self._writer_thread.shutdown(wait=True)
        if self._connection is not None:
            self._connection.close()
        self._writer.dispose()

    async def write(self, records: list[AuditRecord], *, with_audit: bool) -> None:
        """Commits the records' ledger entries, and with `with_audit` the records themselves, in one transaction.

        The rows are laid out here, on the event loop, and the writer thread only hands them to the driver: Python
        run in that thread holds the GIL the loop needs, and with it there (SQLAlchemy's statement machinery, the
        rows built row by row) the server answered 5-9% fewer calls (docs/benchmarks.md)."""
        statements = self._ledger_insert.statements(_ledger_rows(records))
        if with_audit and records:
            statements += self._audit_insert.statements(records, records=True)
        if statements:
            await asyncio.get_running_loop().run_in_executor(self._writer_thread, self._commit, statements)

    def _commit(self, statements: list[_Statement]) -> None:
        connection = self._connection or self._writer.raw_connection()
        self._connection = connection
        try:
            cursor = connection.cursor()
            try:
                for statement in statements:
                    if statement.many:
                        cursor.executemany(statement.sql, statement.params)
                    else:
                        cursor.execute(statement.sql, statement.params)
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            # The connection may be what failed (a database restarted): the retry takes a fresh one.
            self._connection = None
            connection.invalidate()
            raise

    # --- usage ------------------------------------------------------------------------------------------------------

    async def usage(self, group_by: GroupBy, where: UsageFilter) -> list[UsageRow]:
        column = _GROUP_COLUMNS[group_by]
        query = (
            select(
                column,
                func.sum(ledger.c.requests),
                func.sum(ledger.c.prompt_tokens),
                func.sum(ledger.c.completion_tokens),
                func.sum(ledger.c.cached_tokens),
                func.sum(ledger.c.cost_usd),
                func.sum(ledger.c.cache_hits),
                func.sum(ledger.c.cache_saved_usd),
                *_DEFERRED_SUMS,
            )
            .where(_usage_where(where))
            .group_by(column)
            .order_by(func.sum(ledger.c.cost_usd).desc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            UsageRow(str(g), int(n), int(p), int(c), int(k), float(cost), int(hits), float(saved), *_deferred(rest))
            for g, n, p, c, k, cost, hits, saved, *rest in rows
        ]

    async def usage_by_team_model_route(self, where: UsageFilter) -> list[tuple[str, str, str, UsageRow]]:
        """Usage summed per team, serving model and route."""
        query = (
            select(
                ledger.c.team,
                ledger.c.served_model,
                ledger.c.route,
                func.sum(ledger.c.requests),
                func.sum(ledger.c.prompt_tokens),
                func.sum(ledger.c.completion_tokens),
                func.sum(ledger.c.cached_tokens),
                func.sum(ledger.c.cost_usd),
                func.sum(ledger.c.cache_hits),
                func.sum(ledger.c.cache_saved_usd),
                *_DEFERRED_SUMS,
            )
            .where(_usage_where(where))
            .group_by(ledger.c.team, ledger.c.served_model, ledger.c.route)
            .order_by(func.sum(ledger.c.cost_usd).desc())
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            (
                team,
                model,
                route,
                UsageRow(model, int(n), int(p), int(c), int(k), float(cost), int(hits), float(saved), *_deferred(rest)),
            )
            for team, model, route, n, p, c, k, cost, hits, saved, *rest in rows
        ]

    async def call_stats(self, where: UsageFilter) -> dict[tuple[str, str, str], tuple[int, int, float]]:
        """From the audit log, per team, model (the serving one, else the one asked for) and route: calls, failed
        calls and mean latency in ms (shadow copies left out)."""
        model = func.coalesce(func.nullif(audit.c.served_model, ""), audit.c.model)
        condition = (audit.c.at >= where.since) & (audit.c.at < where.until) & (audit.c.kind != SHADOW_KIND)
        if where.team is not None:
            condition = condition & (audit.c.team == where.team)
        query = (
            select(
                audit.c.team,
                model,
                audit.c.route,
                func.count(),
                func.sum(case((audit.c.status != "OK", 1), else_=0)),
                func.avg(audit.c.latency_ms),
            )
            .where(condition)
            .group_by(audit.c.team, model, audit.c.route)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        # Groups are never empty and both columns are NOT NULL: neither sum nor mean is ever NULL.
        return {(t, m, r): (int(n), int(errors), float(latency)) for t, m, r, n, errors, latency in rows}

    async def spend(self, where: UsageFilter) -> float:
        query = select(func.coalesce(func.sum(ledger.c.cost_usd), 0.0)).where(_usage_where(where))
        async with self._engine.connect() as conn:
            return float((await conn.execute(query)).scalar_one())

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

    async def audit_sequences(self, since: float, until: float) -> dict[str, tuple[int, int, int]]:
        """Per writer, over every team's records in [since, until): (lowest seq, highest seq, records)."""
        query = (
            select(audit.c.writer, func.min(audit.c.seq), func.max(audit.c.seq), func.count())
            .where((audit.c.at >= since) & (audit.c.at < until) & (audit.c.seq > 0))
            .group_by(audit.c.writer)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(writer): (int(low), int(high), int(count)) for writer, low, high, count in rows}

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
    """Shadow copies are left out: their spend is the route's shadow budget's, never a key's or team's."""
    condition = (ledger.c.at >= where.since) & (ledger.c.at < where.until) & (ledger.c.kind != SHADOW_KIND)
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


def _ledger_rows(records: list[AuditRecord]) -> list[dict[str, Any]]:
    """The billed calls of a batch, summed per key, model, provider, route and kind, stamped with the latest call's
    time (a batch spans the audit log's flush interval, plus the write of the batch before it under load)."""
    sums: dict[tuple[str, str, str, str, str, str, str], dict[str, Any]] = {}
    for r in records:
        if not r.billable:
            continue
        group = (r.key_id, r.team, r.model, r.served_model, r.provider, r.route, r.kind)
        row = sums.get(group)
        hit = r.cache is not None
        # A cache hit used no provider tokens: it counts as a request, a hit and a saving.
        prompt_tokens = 0 if hit else r.prompt_tokens
        completion_tokens = 0 if hit else r.completion_tokens
        cached_tokens = 0 if hit else r.cached_tokens
        if row is None:
            sums[group] = {
                "at": r.at,
                "key_id": r.key_id,
                "team": r.team,
                "model": r.model,
                "served_model": r.served_model,
                "provider": r.provider,
                "route": r.route,
                "kind": r.kind,
                "requests": 1,
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cached_tokens": cached_tokens,
                "cost_usd": r.cost_usd,
                "cache_hits": int(hit),
                "cache_saved_usd": r.cache_saved_usd,
                "deferred_calls": 0,
                "deferred_cost_usd": 0.0,
                "deferred_interactive_usd": 0.0,
            }
            row = sums[group]
        else:
            row["at"] = max(row["at"], r.at)
            row["requests"] += 1
            row["prompt_tokens"] += prompt_tokens
            row["completion_tokens"] += completion_tokens
            row["cached_tokens"] += cached_tokens
            row["cost_usd"] += r.cost_usd
            row["cache_hits"] += int(hit)
            row["cache_saved_usd"] += r.cache_saved_usd
        deferred = r.deferred
        if deferred is not None and "interactive_usd" in deferred:
            row["deferred_calls"] += 1
            row["deferred_cost_usd"] += r.cost_usd
            row["deferred_interactive_usd"] += deferred["interactive_usd"]
    return list(sums.values())


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    params: Any
    """One row's values, or with `many`, a list of rows'."""
    many: bool = False


class _DriverInsert:
    """An INSERT compiled once by SQLAlchemy for the engine's dialect and run by the driver itself.

    SQLAlchemy's per-row parameter processing cost more than SQLite's insert itself (about 20 against 5 µs a record);
    here the rows are laid out in the dialect's parameter order and JSON columns serialized by orjson, as the JSON
    type would. With positional parameters (SQLite) a batch goes as multi-row INSERTs, each one driver call that
    releases the GIL once instead of once a row; with named ones (PostgreSQL's psycopg) as one executemany."""

    MAX_PARAMETERS = 999
    """SQLite's default limit on a statement's parameters before 3.32, the lowest a driver here may have."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        # Every column but an autoincrementing key, which the database fills.
        columns = [c.name for c in table.columns if c is not table.autoincrement_column]
        compiled = table.insert().compile(dialect=dialect, column_keys=columns)
        self._sql = str(compiled)
        self._positional = compiled.positional
        self._names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
        self._json_at = tuple(i for i, name in enumerate(self._names) if name in json_columns)
        # One C call reads a row's values in parameter order (a row is laid out on the event loop, per call).
        self._by_attribute = operator.attrgetter(*self._names)
        self._by_key = operator.itemgetter(*self._names)
        head, _, values = self._sql.partition(" VALUES ")
        self._head, self._values = head + " VALUES ", values
        self._rows_per_statement = max(1, self.MAX_PARAMETERS // len(self._names))

    def statements(self, rows: Sequence[Any], *, records: bool = False) -> list[_Statement]:
        """The statements inserting `rows`: dicts by column name, or (`records`) objects read by attribute in place
        rather than copied into a dict first."""
        if not rows:
            return []
        read = self._by_attribute if records else self._by_key
        json_at = self._json_at
        if not self._positional:
            params = []
            for row in rows:
                values = list(read(row))
                for i in json_at:
                    values[i] = _json_text(values[i])
                params.append(dict(zip(self._names, values, strict=True)))
            return [_Statement(self._sql, params, many=True)]
        result = []
        step = self._rows_per_statement
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            flat: list[Any] = []
            for row in chunk:
                values = list(read(row))
                for i in json_at:
                    values[i] = _json_text(values[i])
                flat += values
            result.append(_Statement(self._head + ", ".join([self._values] * len(chunk)), flat))
        return result


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _audit_from_row(row: RowMapping) -> AuditRecord:
    return AuditRecord(**row)
