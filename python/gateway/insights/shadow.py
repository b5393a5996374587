"""Shadow traffic: a route's `shadow` model gets a copy of a share of its answered calls, after the caller has its
answer, and how the copy compared (answer similarity, latency, cost) is recorded.

The copy is a call of kind "shadow" through the whole pipeline under the caller's key, so it obeys everything the
primary did: the key's model access and conditions, the data's classification (at least the primary's) and the
team's residency, the input and output guardrails, and the team's body policy for its audit record. A copy those
refuse is not sent. It skips the caller's rate limits and budgets and the response cache: its cost goes to the
route's own shadow budget (`max_usd_per_day`, per UTC day, read from the recorded copies) and to the team's ledger
under kind "shadow", which no key or team budget counts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable

from gateway.config.routes import RouteConfig, ShadowConfig
from gateway.errors import GatewayError
from gateway.insights.runner import run
from gateway.insights.similarity import word_cosine
from gateway.pipeline import CallInfo, CallKind, Pipeline
from gateway.pipeline.call import ChatCall, deadline_from
from gateway.pipeline.stages.identity import CLASSIFICATION_METADATA
from gateway.store.shadow import BUSY, OK, OVER_BUDGET, ShadowCall, ShadowStore, ShadowSummary

log = logging.getLogger("gateway.shadow")
DAY_S = 86_400.0
MAX_IN_FLIGHT = 4
"""Copies per route at once: the budget is checked before each, so it is passed by at most the cost of these."""


class ShadowTraffic:
    def __init__(
        self,
        routes: list[RouteConfig],
        store: ShadowStore,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._shadows = {r.name: r.shadow for r in routes if r.shadow is not None}
        self._store = store
        self._rng = rng or random.Random()
        self._clock = clock
        self._pipeline: Pipeline | None = None
        self._in_flight = dict.fromkeys(self._shadows, 0)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return bool(self._shadows)

    def bind(self, pipeline: Pipeline) -> None:
        """The pipeline the copies run through (built with this object in its chain)."""
        self._pipeline = pipeline

    # --- the stage's side (pipeline/stages/shadow.py) ------------------------------------------------------------

    def wants(self, call: ChatCall) -> bool:
        shadow = self._shadows.get(call.record.model)
        return shadow is not None and self._rng.random() < shadow.share

    def launch(self, call: ChatCall, answer: str) -> None:
        route = call.record.model
        shadow = self._shadows[route]
        target = call.answer.target
        assert target is not None
        assert call.key is not None
        primary = ShadowCall(
            call.request_id,
            call.record.at,
            route,
            call.key.team,
            target.model.name,
            shadow.model,
            "",
            OVER_BUDGET,
            False,
            "",
            (self._clock() - call.record.at) * 1000,
            0.0,
            call.answer.cost_usd,
            0.0,
            None,
        )
        task = asyncio.get_running_loop().create_task(self._mirror(call, answer, shadow, primary))
        self._tasks.add(task)  # referenced until done
        task.add_done_callback(self._tasks.discard)

    async def _mirror(self, call: ChatCall, answer: str, shadow: ShadowConfig, primary: ShadowCall) -> None:
        route = primary.route
        try:
            if self._in_flight[route] >= MAX_IN_FLIGHT:
                await self._store.add(dataclasses.replace(primary, status=BUSY))
                return
            # Taken before the first await, so that copies launched together see each other.
            self._in_flight[route] += 1
            try:
                day = self._clock() // DAY_S * DAY_S
                if await self._store.spent(route, day) >= shadow.max_usd_per_day:
                    compared = primary
                else:
                    compared = await self._copy(call, answer, shadow, primary)
            finally:
                self._in_flight[route] -= 1
            await self._store.add(compared)
        except Exception:
            log.exception("shadow copy of call %s to %s failed", call.request_id, shadow.model)

    async def _copy(self, call: ChatCall, answer: str, shadow: ShadowConfig, primary: ShadowCall) -> ShadowCall:
        assert self._pipeline is not None
        # The classification is at least the primary's, so the copy's residency is no looser than the primary's.
        metadata = [(k, v) for k, v in call.info.metadata or () if k != CLASSIFICATION_METADATA]
        metadata.append((CLASSIFICATION_METADATA, call.classification.label))
        info = CallInfo(metadata, deadline_from(shadow.timeout_s), call.info.peer, call.info.api)
        # The request as it went to the primary's provider: redacted by the input guardrails, never more.
        request = dataclasses.replace(call.request, model=shadow.model)
        outcome = await run(self._pipeline, request, info, kind=CallKind.SHADOW, method="Shadow")
        record = outcome.call.record
        error: GatewayError | None = outcome.error
        return dataclasses.replace(
            primary,
            shadow_request_id=record.request_id,
            status=OK if error is None else error.kind.value,
            sent=outcome.call.execution is not None,
            reason="" if error is None else error.reason,
            shadow_latency_ms=outcome.latency_ms,
            shadow_cost_usd=record.cost_usd,
            similarity=word_cosine(answer, outcome.text) if error is None else None,
        )

    # --- reading -------------------------------------------------------------------------------------------------

    async def summaries(
        self, since: float, until: float, *, team: str | None = None, route: str | None = None
    ) -> list[ShadowSummary]:
        return await self._store.summaries(since, until, team=team, route=route)

    async def drain(self) -> None:
        """Waits for the copies under way (at shutdown, before the audit log's last flush)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
