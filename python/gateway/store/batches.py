"""The Batches service's jobs and items in the database (SQLite or PostgreSQL), and the leases by which one process
at a time works on a batch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, case, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.records.batches import BatchFile, BatchJob, Counts, ItemState, Status, Step, StoredItem
from gateway.store.tables import audit, batch_files, batch_items, batch_jobs

_JOB_FIELDS = tuple(BatchJob.__dataclass_fields__)
_ITEM_FIELDS = tuple(StoredItem.__dataclass_fields__)


def _job(row: Any) -> BatchJob:
    values = dict(row._mapping)
    values["labels"] = values["labels"] or {}
    values["status"] = Status(values["status"])
    values["step"] = Step(values["step"])
    return BatchJob(**{name: values[name] for name in _JOB_FIELDS})


def _item(row: Any) -> StoredItem:
    values = dict(row._mapping)
    values["state"] = ItemState(values["state"])
    return StoredItem(**{name: values[name] for name in _ITEM_FIELDS})


class BatchStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, job: BatchJob, items: list[StoredItem]) -> None:
        """The job and all its items, in one transaction: a batch is stored whole or not at all."""
        async with self._engine.begin() as conn:
            await conn.execute(batch_jobs.insert().values(asdict(job) | {"lease_owner": "", "lease_until": 0.0}))
            await conn.execute(batch_items.insert(), [asdict(item) for item in items])

    async def job(self, batch_id: str) -> BatchJob | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_job_columns()).where(batch_jobs.c.id == batch_id))).first()
        return _job(row) if row is not None else None

    async def jobs(
        self, *, key_id: str | None, team: str | None, limit: int, before: BatchJob | None
    ) -> list[BatchJob]:
        """Newest first: a key's (key_id), a team's (team) or all; after the page that ended with `before`."""
        after = (before.created_at, before.id) if before is not None else None
        rows = await self._newest_first(batch_jobs, _job_columns(), key_id, team, limit, after)
        return [_job(row) for row in rows]

    async def _newest_first(
        self,
        table: Table,
        columns: list[Any],
        key_id: str | None,
        team: str | None,
        limit: int,
        after: tuple[float, str] | None,
    ) -> list[Row[Any]]:
        """A page of a table's rows newest first (by created_at, then id): a key's, a team's or all, after the row
        with (created_at, id) `after`."""
        c = table.c
        condition: ColumnElement[bool] = c.id != ""
        if key_id is not None:
            condition = condition & (c.key_id == key_id)
        if team is not None:
            condition = condition & (c.team == team)
        if after is not None:
            condition = condition & (tuple_(c.created_at, c.id) < tuple_(*after))
        query = select(*columns).where(condition).order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def update(self, batch_id: str, **values: Any) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(update(batch_jobs).where(batch_jobs.c.id == batch_id).values(**values))

    async def request_cancel(self, batch_id: str, now: float) -> bool:
        """Marks a batch that has not ended for cancelling; False when it had ended already."""
        ended = [status.value for status in Status if status.ended]
        query = (
            update(batch_jobs)
            .where((batch_jobs.c.id == batch_id) & batch_jobs.c.status.not_in(ended))
            .values(cancel_requested=True, status=Status.CANCELLING.value, updated_at=now)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1

    # --- leases -----------------------------------------------------------------------------------------------------

    async def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[BatchJob]:
        """Batches not ended whose lease is free, expired or this owner's, now leased to `owner` until now +
        lease_s. Each claim is one conditional UPDATE in a transaction of its own, so of two processes claiming the
        same batch only one gets it, on SQLite and PostgreSQL alike; and on SQLite the transaction begins with its
        write, so it waits for another writer's lock rather than failing as a possible deadlock."""
        c = batch_jobs.c
        free = or_(c.lease_until < now, c.lease_owner == owner)
        candidates = select(c.id).where((c.step != Step.ENDED.value) & free).order_by(c.updated_at).limit(limit)
        async with self._engine.connect() as conn:
            found = [row[0] for row in (await conn.execute(candidates)).all()]
        claimed: list[str] = []
        for batch_id in found:
            async with self._engine.begin() as conn:
                taken = await conn.execute(
                    update(batch_jobs)
                    .where((c.id == batch_id) & (c.step != Step.ENDED.value) & free)
                    .values(lease_owner=owner, lease_until=now + lease_s)
                )
            if taken.rowcount == 1:
                claimed.append(batch_id)
        if not claimed:
            return []
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(*_job_columns()).where(c.id.in_(claimed)))).all()
        return [_job(row) for row in rows]

    async def renew(self, batch_id: str, owner: str, until: float) -> None:
        """Extends `owner`'s lease on a batch (if it still holds it)."""
        query = (
            update(batch_jobs)
            .where((batch_jobs.c.id == batch_id) & (batch_jobs.c.lease_owner == owner))
            .values(lease_until=until)
        )
        async with self._engine.begin() as conn:
            await conn.execute(query)

    async def release(self, batch_id: str, owner: str) -> None:
        query = (
            update(batch_jobs)
            .where((batch_jobs.c.id == batch_id) & (batch_jobs.c.lease_owner == owner))
            .values(lease_owner="", lease_until=0.0)
        )
        async with self._engine.begin() as conn:
            await conn.execute(query)

    # --- items ------------------------------------------------------------------------------------------------------

    async def items(self, batch_id: str, *, state: ItemState | None = None) -> list[StoredItem]:
        c = batch_items.c
        condition = c.batch_id == batch_id
        if state is not None:
            condition = condition & (c.state == state.value)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(batch_items).where(condition).order_by(c.position))).all()
        return [_item(row) for row in rows]

    async def settle(self, item: StoredItem) -> bool:
        """Records an item's outcome, if it has none yet: True when this call recorded it (and so must bill it),
        False when another had."""
        c = batch_items.c
        query = (
            update(batch_items)
            .where((c.batch_id == item.batch_id) & (c.custom_id == item.custom_id) & (c.state == ItemState.PENDING))
            .values(
                state=item.state.value,
                outcome=item.outcome,
                cost_usd=item.cost_usd,
                request_id=item.request_id,
                retried=item.retried,
                settled_at=item.settled_at,
                guardrails=item.guardrails,
            )
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(query)).rowcount == 1

    async def mark_retried(self, batch_id: str, custom_ids: list[str]) -> None:
        """Items a fallback batch sends again (each once)."""
        c = batch_items.c
        query = update(batch_items).where((c.batch_id == batch_id) & c.custom_id.in_(custom_ids)).values(retried=True)
        async with self._engine.begin() as conn:
            await conn.execute(query)

    async def mark_billed(self, batch_id: str, custom_ids: Iterable[str]) -> None:
        c = batch_items.c
        query = (
            update(batch_items).where((c.batch_id == batch_id) & c.custom_id.in_(list(custom_ids))).values(billed=True)
        )
        async with self._engine.begin() as conn:
            await conn.execute(query)

    async def unbilled(self, batch_id: str) -> list[StoredItem]:
        """Items with an outcome whose billing may not have been committed (a crash in between)."""
        c = batch_items.c
        condition = (c.batch_id == batch_id) & (c.state != ItemState.PENDING) & c.billed.is_(False)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(batch_items).where(condition))).all()
        return [_item(row) for row in rows]

    async def audited(self, request_ids: list[str]) -> set[str]:
        """Those of `request_ids` that have an audit record."""
        if not request_ids:
            return set()
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(audit.c.request_id).where(audit.c.request_id.in_(request_ids)))).all()
        return {row[0] for row in rows}

    async def settled_after(self, batch_id: str, after: tuple[float, str] | None, limit: int) -> list[StoredItem]:
        """Items with an outcome, in the order they got it (then by custom_id), after the cursor `after`."""
        c = batch_items.c
        condition = (c.batch_id == batch_id) & (c.state != ItemState.PENDING)
        if after is not None:
            condition = condition & (tuple_(c.settled_at, c.custom_id) > tuple_(*after))
        query = select(batch_items).where(condition).order_by(c.settled_at, c.custom_id).limit(limit)
        async with self._engine.connect() as conn:
            return [_item(row) for row in (await conn.execute(query)).all()]

    async def counts(self, batch_ids: list[str]) -> dict[str, tuple[Counts, float]]:
        """Per batch: its items' counts and their cost so far."""
        c = batch_items.c

        def count(when: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((when, 1), else_=0))

        query = (
            select(
                c.batch_id,
                func.count(),
                count(c.state == ItemState.PENDING.value),
                count(c.state == ItemState.SUCCEEDED.value),
                count(c.state == ItemState.FAILED.value),
                count(c.retried.is_(True)),
                func.coalesce(func.sum(c.cost_usd), 0.0),
            )
            .where(c.batch_id.in_(batch_ids))
            .group_by(c.batch_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            batch_id: (Counts(int(n), int(p or 0), int(s or 0), int(f or 0), int(r or 0)), float(cost))
            for batch_id, n, p, s, f, r, cost in rows
        }

    # --- uploaded files -----------------------------------------------------------------------------------------------

    async def add_file(self, file: BatchFile, content: bytes) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(batch_files.insert().values(asdict(file) | {"content": content}))

    async def file(self, file_id: str) -> BatchFile | None:
        columns = [batch_files.c[name] for name in BatchFile.__dataclass_fields__]
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*columns).where(batch_files.c.id == file_id))).first()
        return BatchFile(*row) if row is not None else None

    async def files(
        self, *, key_id: str | None, team: str | None, limit: int, before: BatchFile | None
    ) -> list[BatchFile]:
        """Newest first: a key's (key_id), a team's (team) or all; after the page that ended with `before`."""
        columns = [batch_files.c[name] for name in BatchFile.__dataclass_fields__]
        after = (before.created_at, before.id) if before is not None else None
        return [
            BatchFile(**row._mapping)
            for row in await self._newest_first(batch_files, columns, key_id, team, limit, after)
        ]

    async def file_content(self, file_id: str) -> bytes:
        async with self._engine.connect() as conn:
            return bytes(
                (await conn.execute(select(batch_files.c.content).where(batch_files.c.id == file_id))).scalar_one()
            )


def _job_columns() -> list[Any]:
    return [batch_jobs.c[name] for name in _JOB_FIELDS]
