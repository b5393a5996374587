"""The audit log writer: every call's record (and its ledger entry) reaches the database in batches.

Batched mode (the default) commits in one transaction what arrived while the batch before it was being written and
for `flush_interval_s` after (or after its first record, when the writer was idle), so batches commit in the order
records arrived and a killed process loses only the newest: the last interval's and one or two writes' worth. Strict
mode commits a call's record before its response completes: calls wait for the commit, and records that arrive while
one is in progress share the next (group commit). A write that fails is retried, never dropped; a graceful shutdown
writes everything still pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.records.audit import AuditRecord

log = logging.getLogger("gateway.audit")

WriteBatch = Callable[[list[AuditRecord]], Awaitable[None]]
_RETRY_S = (0.05, 0.2, 1.0, 5.0)


@dataclass(frozen=True, slots=True)
class AuditSettings:
    strict: bool = False
    flush_interval_s: float = 0.01
    max_batch: int = 2000


class AuditLog:
    def __init__(self, write: WriteBatch, settings: AuditSettings) -> None:
        self._write = write
        self._settings = settings
        self.writer = f"{socket.gethostname()[:40]}/{os.getpid()}/{secrets.token_hex(4)}"
        """This process's name in the records' (writer, seq): a restarted process starts a new sequence."""
        self._seq = 0
        self._pending: list[AuditRecord] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._idle = True
        """The writer waits for a first record; only that record wakes it (a wake-up per call would cost more
        than the write)."""
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        """Set by strict commits, flushes and shutdown: cuts the batching wait short."""
        self._closing = False
        self._writing = False
        """A batch taken from pending is being written: a flush must wait for it too."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    @property
    def strict(self) -> bool:
        return self._settings.strict

    def submit(self, record: AuditRecord) -> None:
        """Queues a record for the next batch (batched mode)."""
        self._number(record)
        self._pending.append(record)
        if self._idle:
            self._idle = False
            self._wake.set()

    async def commit(self, record: AuditRecord) -> None:
        """Queues a record and returns once it is committed (strict mode)."""
        self._number(record)
        self._pending.append(record)
        await self._committed()

    def _number(self, record: AuditRecord) -> None:
        self._seq += 1
        record.writer, record.seq = self.writer, self._seq

    async def flush(self) -> None:
        """Returns once everything submitted so far is committed, the batch being written included."""
        if self._pending or self._writing:
            await self._committed()

    async def _committed(self) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        self._idle = False
        self._wake.set()
        self._urgent.set()
        await asyncio.shield(done)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        self._urgent.set()
        if self._task is not None:
            await self._task

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _run(self) -> None:
        while True:
            if not self._pending and not self._closing:
                self._idle = True
                await self._wake.wait()
            self._wake.clear()
            if not self._settings.strict:
                # Let the batch fill; a strict commit, a flush or shutdown cuts the wait short (or has already: the
                # wait then returns at once).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._settings.flush_interval_s):
                        await self._urgent.wait()
            self._urgent.clear()
            batch, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            self._writing = True
            try:
                for start in range(0, len(batch), self._settings.max_batch):
                    await self._write_until_done(batch[start : start + self._settings.max_batch])
            finally:
                self._writing = False
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._closing and not self._pending:
                return

    async def _write_until_done(self, batch: list[AuditRecord]) -> None:
        attempt = 0
        while True:
            try:
                await self._write(batch)
            except Exception:
                delay = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
                log.exception("writing %d audit records failed; retrying in %.2f s", len(batch), delay)
                attempt += 1
                await asyncio.sleep(delay)
            else:
                return
