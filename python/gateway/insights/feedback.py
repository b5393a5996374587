"""Feedback on calls and the profiles it feeds: who may rate which call, storing the ratings, counting a learned
route's quality metric into its profiles, and reading the profiles back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.config.learning import FeedbackConfig
from gateway.config.routes import RouteConfig
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from gateway.learning.profiles import Profile, ProfileBook
from gateway.learning.ratings import Given, Source, check, quality
from gateway.ledger.audit import AuditLog
from gateway.policy.access import check_manages
from gateway.records.audit import AuditFilter, AuditRecord
from gateway.records.governance import KeyRecord, Role
from gateway.store.feedback import FeedbackStore, Rating
from gateway.store.ledger import LedgerStore

log = logging.getLogger("gateway.feedback")
MAX_COMMENT_CHARS = 4000
PROFILE_SYNC_S = 1.0
"""How often a process adds its observations to the shared profiles and reads the others' back."""


@dataclass(frozen=True, slots=True)
class Recorded:
    metric: str
    replaced: bool
    quality: float


class FeedbackOperations:
    def __init__(
        self,
        config: FeedbackConfig,
        routes: list[RouteConfig],
        ledger: LedgerStore,
        store: FeedbackStore,
        audit: AuditLog,
        profiles: ProfileBook,
        *,
        audit_enabled: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._quality_metric = {r.name: r.learned.quality for r in routes if r.learned is not None}
        self._ledger = ledger
        self._store = store
        self._audit = audit
        self._audit_enabled = audit_enabled
        self.profiles = profiles
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def give(
        self, caller: KeyRecord, request_id: str, ratings: list[Given], comment: str, source: Source
    ) -> list[Recorded]:
        if not request_id:
            raise InvalidRequest("request_id is required: the id of the call (ChatResponse.id)")
        if not ratings:
            raise InvalidRequest("give at least one rating", reason="NO_RATINGS")
        names = [r.metric for r in ratings]
        if len(set(names)) != len(names):
            raise InvalidRequest("rate each metric at most once per request", reason="DUPLICATE_METRIC")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidRequest(f"the comment is over {MAX_COMMENT_CHARS} characters", reason="COMMENT_TOO_LONG")
        checked = [check(r, self._config) for r in ratings]  # all valid, or none stored
        record = await self._call(caller, request_id)
        now = self._clock()
        quality_metric = self._quality_metric.get(record.route)
        recorded = []
        for rating in checked:
            previous = await self._store.put(
                Rating(
                    request_id,
                    rating.metric.name,
                    source.value,
                    rating.value,
                    rating.label,
                    comment,
                    caller.id,
                    record.team,
                    now,
                )
            )
            scaled = quality(rating.metric, rating.value)
            recorded.append(Recorded(rating.metric.name, previous is not None, scaled))
            if rating.metric.name == quality_metric and record.learned is not None and record.served_model:
                arm = (record.route, str(record.learned["query_type"]), record.served_model)
                if previous is None:
                    self.profiles.observe_quality(arm, record.at, scaled)
                else:
                    self.profiles.observe_quality(arm, record.at, scaled - quality(rating.metric, previous), 0.0)
        return recorded

    async def _call(self, caller: KeyRecord, request_id: str) -> AuditRecord:
        """The call's record, if the caller may rate it: its own call, its team's for a team admin, any for admins."""
        if not self._audit_enabled:
            raise FailedPrecondition(
                "feedback is kept with the call's audit record, and the audit log is off (audit.enabled)",
                reason="AUDIT_OFF",
            )
        await self._audit.flush()  # a call answered a moment ago may still wait for its audit batch
        found = await self._ledger.query_audit(AuditFilter(request_id=request_id, limit=1))
        if not found:
            raise NotFound(
                f"no call {request_id!r} in the audit log (unknown, or past the team's retention)",
                reason="UNKNOWN_REQUEST",
            )
        record = found[0]
        if caller.role is Role.MEMBER:
            if record.key_id != caller.id:
                raise PermissionDenied(
                    f"key {caller.id} may rate only its own calls; call {request_id} was made by another key",
                    reason="NOT_YOUR_CALL",
                )
        elif caller.role is Role.TEAM_ADMIN and record.key_id != caller.id:
            check_manages(caller, record.team)
        return record

    async def profiles_of(self, route: str, query_type: str) -> list[Profile]:
        now = self._clock()
        await self.profiles.sync(now)
        return [p for p in self.profiles.profiles(now, route) if not query_type or p.query_type == query_type]

    # --- sharing the profiles -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._sync_forever(), name="profiles-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.profiles.sync(self._clock())  # the last observations, for the other workers

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(PROFILE_SYNC_S)
            try:
                await self.profiles.sync(self._clock())
            except Exception:
                log.warning(
                    "sharing the learned routes' profiles failed; retrying in %g s", PROFILE_SYNC_S, exc_info=True
                )
