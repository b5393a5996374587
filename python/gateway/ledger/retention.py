"""Audit retention: a background job deletes records older than their team's retention days."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.records.governance import Team
from gateway.store.ledger import LedgerStore

log = logging.getLogger("gateway.audit")

_DAY_S = 86_400.0


class Retention:
    def __init__(
        self,
        ledger: LedgerStore,
        teams: Callable[[], list[Team]],
        default_days: int,
        interval_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ledger = ledger
        self._teams = teams
        self._default_days = default_days
        self._interval_s = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_purge_at: float | None = None
        """When this process last purged (the compliance report shows it); None before its first purge."""

    async def purge(self) -> int:
        """Deletes every record past its team's retention (the default's for records of teams without one)."""
        now = self._clock()
        purged = 0
        own: set[str] = set()
        for team in self._teams():
            if team.retention_days and team.retention_days != self._default_days:
                own.add(team.name)
                purged += await self._ledger.purge_audit(now - team.retention_days * _DAY_S, team=team.name)
        purged += await self._ledger.purge_audit(now - self._default_days * _DAY_S, other_than=own)
        self.last_purge_at = now
        if purged:
            log.info("purged %d audit records past retention", purged)
        return purged

    def start(self) -> None:
        self._task = asyncio.create_task(self._purge_forever(), name="audit-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("purging audit records failed; trying again next interval")
            await asyncio.sleep(self._interval_s)
