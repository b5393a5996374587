"""What only the running processes know (not the ledger), for the whole gateway: each process's breakers and rested
targets, calls in flight, queue depths, drift flags and last audit purge.

Every process (each worker of `--workers`, each instance) publishes a small snapshot of its own to the shared state
about once a second (`LiveShare`): the database, which every worker and instance already shares. A reader (the
console's overview, the compliance report's last purge) merges the fresh snapshots, its own taken anew; a snapshot
older than `stale_after_s` is a process that stopped or cannot reach the database: left out of the figures and
named as stale. A process that stops cleanly removes its snapshot; one that died is forgotten after `FORGET_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.records.live import ProcessLive

if TYPE_CHECKING:
    from gateway.ledger.retention import Retention
    from gateway.observe.drift import DriftFlag, DriftMonitor
    from gateway.routing.health import HealthBoard

log = logging.getLogger("gateway.observe")

FORGET_S = 3600.0
"""A snapshot not renewed for this long is deleted: its process is gone for good (a restart is a new process)."""

_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}
"""Which breaker state a merged target shows when processes disagree: the most severe."""


@dataclass(frozen=True, slots=True)
class LiveSources:
    """Where a process's snapshot is read from: its own objects, read on the event loop (each read is O(targets) or
    O(flags), no I/O)."""

    process: str
    board: HealthBoard
    in_flight: Callable[[], int]
    queued: Callable[[], dict[str, int]]
    drift: DriftMonitor | None
    retention: Retention

    def sample(self, now: float) -> ProcessLive:
        return ProcessLive(
            process=self.process,
            at=now,
            in_flight=self.in_flight(),
            queued=self.queued(),
            breakers=[
                {"target": key, "state": h.breaker.state.value, "rested_s": round(h.cooling_for(), 1)}
                for key, h in self.board.items()
                if h.breaker.state != "closed" or h.cooling_for() > 0
            ],
            drift=[flag_entry(model, provider, flag) for model, provider, flag in self.drift.flags()]
            if self.drift is not None
            else [],
            last_purge_at=self.retention.last_purge_at,
        )


def flag_entry(model: str, provider: str, flag: DriftFlag) -> dict[str, Any]:
    return {"model": model, "provider": provider, "metric": flag.metric, "since": flag.since, "detail": flag.detail}


def merge_flags(*flag_lists: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each (model, provider, metric) once, with the earliest since any process gives."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for flags in flag_lists:
        for flag in flags:
            key = (flag["model"], flag["provider"], flag["metric"])
            known = merged.get(key)
            if known is None or flag["since"] < known["since"]:
                merged[key] = flag
    return [merged[key] for key in sorted(merged)]


class LiveStore(Protocol):
    """Where the snapshots meet (store/live.py)."""

    async def put(self, snapshot: ProcessLive, forget_before: float) -> None:
        """Replaces the process's snapshot, and deletes those not renewed since `forget_before`."""
        ...

    async def all(self) -> list[ProcessLive]: ...

    async def drop(self, process: str) -> None: ...


@dataclass(frozen=True, slots=True)
class GatewayLive:
    """Every process's snapshot merged."""

    processes: int
    """Processes whose snapshot is fresh: the figures below are theirs."""
    stale: list[dict[str, Any]]
    """{"process", "age_s"} of each process whose snapshot is too old to count."""
    in_flight: int
    queued: dict[str, int]
    breakers: list[dict[str, Any]]
    """Per target: the most severe state any process sees, the longest rest, and in how many processes."""
    drift: list[dict[str, Any]]
    """Each (model, provider, metric) flagged in any process, with the earliest since."""
    last_purge_at: float | None
    """The latest purge of any process, fresh or stale: a purge that happened stays true."""


def merge(snapshots: Iterable[ProcessLive], now: float, stale_after_s: float) -> GatewayLive:
    fresh: list[ProcessLive] = []
    stale: list[dict[str, Any]] = []
    last_purge: float | None = None
    for snapshot in snapshots:
        if snapshot.last_purge_at is not None:
            last_purge = max(last_purge or 0.0, snapshot.last_purge_at)
        age = now - snapshot.at
        if age > stale_after_s:
            stale.append({"process": snapshot.process, "age_s": round(age, 1)})
        else:
            fresh.append(snapshot)
    queued: dict[str, int] = {}
    breakers: dict[str, dict[str, Any]] = {}
    for snapshot in fresh:
        for route, depth in snapshot.queued.items():
            queued[route] = queued.get(route, 0) + depth
        for breaker in snapshot.breakers:
            target = breaker["target"]
            merged = breakers.setdefault(target, {"target": target, "state": "closed", "rested_s": 0.0, "processes": 0})
            if _SEVERITY.get(breaker["state"], 0) > _SEVERITY.get(merged["state"], 0):
                merged["state"] = breaker["state"]
            merged["rested_s"] = max(merged["rested_s"], breaker["rested_s"])
            merged["processes"] += 1
    return GatewayLive(
        processes=len(fresh),
        stale=sorted(stale, key=lambda s: s["process"]),
        in_flight=sum(s.in_flight for s in fresh),
        queued=dict(sorted(queued.items())),
        breakers=[breakers[t] for t in sorted(breakers)],
        drift=merge_flags(*(s.drift for s in fresh)),
        last_purge_at=last_purge,
    )


class LiveShare:
    """Publishes this process's snapshot every `interval_s`; merges everyone's on demand."""

    def __init__(
        self,
        sources: LiveSources,
        store: LiveStore,
        *,
        interval_s: float = 1.0,
        stale_after_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sources = sources
        self._store = store
        self._interval_s = interval_s
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._publish_forever(), name="live-share")

    async def close(self) -> None:
        """Stops publishing and removes this process's snapshot: a process that stopped is not stale, it is gone."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):  # the database may be what is down; the snapshot is forgotten later
            await self._store.drop(self._sources.process)

    async def merged(self) -> GatewayLive:
        """Every process's snapshot, this one's taken now (the others' are up to `interval_s` old)."""
        others = [s for s in await self._store.all() if s.process != self._sources.process]
        now = self._clock()
        return merge([self._sources.sample(now), *others], now, self._stale_after_s)

    async def last_purge_at(self) -> float | None:
        """The latest audit purge of any process (one process of a machine runs them)."""
        return (await self.merged()).last_purge_at

    async def _publish_forever(self) -> None:
        while True:
            try:
                now = self._clock()
                await self._store.put(self._sources.sample(now), now - FORGET_S)
                if self._failing:
                    log.info("sharing live figures with the other processes again")
                self._failing = False
            except Exception as err:
                if not self._failing:  # once per outage, not once a second
                    log.warning("cannot share live figures with the other processes (%s); retrying", err)
                self._failing = True
            await asyncio.sleep(self._interval_s)
