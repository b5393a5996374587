"""The processes' live snapshots in the database (observe/live.py): one row per process, replaced in place."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.records.live import ProcessLive
from gateway.store.database import dialect_insert
from gateway.store.tables import live_processes


class SqlLiveStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = dialect_insert(engine)

    async def put(self, snapshot: ProcessLive, forget_before: float) -> None:
        statement = self._insert(live_processes).values(
            process=snapshot.process, at=snapshot.at, snapshot=snapshot.payload()
        )
        statement = statement.on_conflict_do_update(
            index_elements=["process"], set_={"at": statement.excluded.at, "snapshot": statement.excluded.snapshot}
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
            await conn.execute(delete(live_processes).where(live_processes.c.at < forget_before))

    async def all(self) -> list[ProcessLive]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(live_processes.c.snapshot))).scalars().all()
        return [ProcessLive.from_payload(row) for row in rows]

    async def drop(self, process: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(delete(live_processes).where(live_processes.c.process == process))
