"""Deferred calls in the state database (tables.deferred_calls): accepted, renewed by their worker's lease, taken
over when a lease runs out, answered or failed, then purged.

Acceptances and outcomes from concurrent calls are gathered into one transaction (a call waits for the commit of
its own row): a thousand calls held at once cost a few commits, not a thousand."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store.tables import deferred_calls as table

PENDING, DONE, FAILED = "pending", "done", "failed"


@dataclass(frozen=True, slots=True)
class DeferredRow:
    request_id: str
    key_id: str
    accepted_at: float
    defer_up_to_s: float
    state: str
    request: bytes | None
    peer: str
    metadata: dict[str, str] | None
    response: bytes | None
    error_code: str
    error_reason: str
    error_message: str


@dataclass(frozen=True, slots=True)
class Accepted:
    """A deferred call as accepted: what resuming it needs."""

    request_id: str
    key_id: str
    at: float
    defer_up_to_s: float
    request: bytes
    """The ChatRequest, protobuf bytes."""
    peer: str
    metadata: dict[str, str]
    """The call's text metadata, without authorization."""


Work = Callable[[AsyncConnection], Awaitable[None]]


class DeferredStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: list[tuple[Work, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def accept(self, accepted: Accepted, owner: str, until: float) -> None:
        """Committed when it returns: from then on a dead worker's call is resumed elsewhere."""
        row = {
            "request_id": accepted.request_id,
            "key_id": accepted.key_id,
            "accepted_at": accepted.at,
            "defer_up_to_s": accepted.defer_up_to_s,
            "state": PENDING,
            "request": accepted.request,
            "peer": accepted.peer,
            "metadata": accepted.metadata,
            "owner": owner,
            "lease_until": until,
        }

        async def write(conn: AsyncConnection) -> None:
            await conn.execute(insert(table).values(**row))

        await self._write(write)

    async def finish(self, request_id: str, response: bytes, at: float) -> None:
        """The answer, kept for GetDeferred; the request is dropped (nothing resends it any more)."""
        await self._settle(request_id, at, state=DONE, response=response)

    async def fail(self, request_id: str, at: float, code: str, reason: str, message: str) -> None:
        await self._settle(request_id, at, state=FAILED, error_code=code, error_reason=reason, error_message=message)

    async def _settle(self, request_id: str, at: float, **values: object) -> None:
        async def write(conn: AsyncConnection) -> None:
            await conn.execute(
                update(table).where(table.c.request_id == request_id).values(request=None, finished_at=at, **values)
            )

        await self._write(write)

    async def get(self, request_id: str) -> DeferredRow | None:
        query = select(
            table.c.request_id,
            table.c.key_id,
            table.c.accepted_at,
            table.c.defer_up_to_s,
            table.c.state,
            table.c.request,
            table.c.peer,
            table.c.metadata,
            table.c.response,
            table.c.error_code,
            table.c.error_reason,
            table.c.error_message,
        ).where(table.c.request_id == request_id)
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else DeferredRow(**found._mapping)

    async def renew(self, owner: str, until: float) -> None:
        """Extends the lease of every call this worker holds."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(table).where((table.c.owner == owner) & (table.c.state == PENDING)).values(lease_until=until)
            )

    async def take_over(self, owner: str, now: float, until: float) -> list[DeferredRow]:
        """The pending calls whose lease ran out, now this worker's: each taken by one update that checks the lease
        is still out, so two workers never both take the same call."""
        query = select(table.c.request_id, table.c.owner).where(
            (table.c.state == PENDING) & (table.c.lease_until < now)
        )
        taken: list[str] = []
        async with self._engine.begin() as conn:
            for request_id, previous in (await conn.execute(query)).all():
                result = await conn.execute(
                    update(table)
                    .where(
                        (table.c.request_id == request_id)
                        & (table.c.owner == previous)
                        & (table.c.state == PENDING)
                        & (table.c.lease_until < now)
                    )
                    .values(owner=owner, lease_until=until)
                )
                if result.rowcount == 1:
                    taken.append(request_id)
        rows = [await self.get(request_id) for request_id in taken]
        return [row for row in rows if row is not None]

    async def purge(self, before: float) -> int:
        """Drops answers and errors that came before `before`."""
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.finished_at < before))
        return int(result.rowcount)

    async def _write(self, work: Work) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._commit(batch)
            except Exception as err:
                if len(batch) == 1:
                    _settle(batch[0][1], err)
                    continue
                # One bad row (an id taken) must not fail the others: each again, in a transaction of its own.
                for one in batch:
                    try:
                        await self._commit([one])
                    except Exception as single:
                        _settle(one[1], single)
                    else:
                        _settle(one[1], None)
            else:
                for _, future in batch:
                    _settle(future, None)

    async def _commit(self, batch: list[tuple[Work, asyncio.Future[None]]]) -> None:
        async with self._engine.begin() as conn:
            for work, _ in batch:
                await work(conn)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():  # its caller went away
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
