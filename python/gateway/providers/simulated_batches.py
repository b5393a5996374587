"""Where the simulated provider keeps the batches its batch API made: the provider's side of a batch, as a real
provider keeps it on its servers.

A SQLite file in the gateway's state folder, so every process serving from that folder (the `--workers` siblings,
whichever of them polls a batch) and the next start find a batch, as every process finds a real provider's batches.
Instances with state folders of their own do not share it: a batch one made is NOT_FOUND on another (instances
behind one PostgreSQL database should use a real provider's batch API for batches). The file is made by the first
batch; each call opens its own connection in a thread (SQLite's lock orders the processes' writes), since batches
are few and their steps seconds apart.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

SIMULATED_BATCHES = "simulated-batches.sqlite3"
"""The file in the state folder."""
KEEP_S = 2 * 86_400.0
"""How long a batch is kept after its creation: past the 24 h completion window, so a results fetch finds it."""
_BUSY_TIMEOUT_S = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    cancelled_at REAL,
    requests BLOB NOT NULL
)
"""
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchTimes:
    """When a batch was made, and cancelled (None: not)."""

    created_at: float
    cancelled_at: float | None


class SimulatedBatchBook:
    """One simulated provider's batches, in the file every simulated provider of the state folder shares."""

    def __init__(self, path: Path, provider: str) -> None:
        self._path = path
        self._provider = provider

    async def add(self, batch_id: str, job_id: str, created_at: float, requests: bytes) -> None:
        """A new batch; `requests`: its items as its batch API wrote them. Batches past KEEP_S go."""

        def add(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM batches WHERE created_at < ?", (created_at - KEEP_S,))
            db.execute(
                "INSERT INTO batches (id, provider, job_id, created_at, requests) VALUES (?, ?, ?, ?, ?)",
                (batch_id, self._provider, job_id, created_at, requests),
            )

        await self._run(add)

    async def find(self, job_id: str, since: float) -> str | None:
        """The latest batch made for the gateway's batch `job_id` since `since`."""

        def find(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT id FROM batches WHERE provider = ? AND job_id = ? AND created_at >= ? "
                "ORDER BY created_at DESC LIMIT 1",
                (self._provider, job_id, since),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(find)

    async def times(self, batch_id: str) -> BatchTimes | None:
        def times(db: sqlite3.Connection) -> BatchTimes | None:
            row = db.execute(
                "SELECT created_at, cancelled_at FROM batches WHERE provider = ? AND id = ?", (self._provider, batch_id)
            ).fetchone()
            return None if row is None else BatchTimes(row[0], row[1])

        return await self._run(times)

    async def requests(self, batch_id: str) -> bytes | None:
        def requests(db: sqlite3.Connection) -> bytes | None:
            row = db.execute(
                "SELECT requests FROM batches WHERE provider = ? AND id = ?", (self._provider, batch_id)
            ).fetchone()
            return None if row is None else bytes(row[0])

        return await self._run(requests)

    async def cancel(self, batch_id: str, now: float, made_after: float) -> None:
        """Marks the batch cancelled at `now`, unless it was made before `made_after` (it has ended) or was cancelled
        already."""

        def cancel(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE batches SET cancelled_at = ? "
                "WHERE provider = ? AND id = ? AND cancelled_at IS NULL AND created_at > ?",
                (now, self._provider, batch_id, made_after),
            )

        await self._run(cancel)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._in_thread, work)

    def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, timeout=_BUSY_TIMEOUT_S)
        try:
            with db:  # one transaction, committed on success
                db.execute(_SCHEMA)
                return work(db)
        finally:
            db.close()
