"""The background worker of the Batches service: one per process, taking each batch not ended under a lease (so of
several processes, --workers or instances, one works on a batch at a time) and moving it one step on at each round:
upload, create, poll, then collect and bill its results.

Every step is recorded before the provider is asked for the next (records/batches.py Step), so a process that
restarts, or takes over an expired lease, resumes where the last one stopped: a batch is never created twice, and its
results are fetched again only to find the items still without an outcome."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from gateway.batches.adapters.base import BatchApi, Line, RemoteResult, RemoteState
from gateway.batches.adapters.registry import batch_api
from gateway.batches.admission import BatchAdmission
from gateway.batches.billing import BatchBilling, answer_outcome, failed
from gateway.batches.bodies import loaded
from gateway.config.batches import BatchesConfig
from gateway.errors import GatewayError, ProviderError
from gateway.observe import attributes as attr
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.spans import Attributes, CallTracer
from gateway.pipeline import CallInfo, CallKind, Pipeline
from gateway.policy.keyring import KeyRing
from gateway.records.batches import BatchJob, ItemError, ItemState, Status, Step, StoredItem
from gateway.routing.catalog import ModelCatalog, Target
from gateway.store.batches import BatchStore

log = logging.getLogger("gateway.batches")

CLAIM_LIMIT = 20
"""Batches one round takes on at most; the others wait for the next round (or another process)."""
SETTLE_PAGE = 500
"""Items billed together: one audit commit and one update for this many."""
RETRIED_CODES = frozenset({"UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL"})
"""Item failures the fallback sends again: the provider's, not the caller's request (INVALID_ARGUMENT), nor an
output guardrail's refusal, nor an expiry or a cancel."""
FALLBACK_CONCURRENCY = 4
_LEFT_OVER = {
    Status.EXPIRED: ItemError("DEADLINE_EXCEEDED", "BATCH_EXPIRED", "the batch expired before this item was answered"),
    Status.CANCELLED: ItemError(
        "CANCELLED", "BATCH_CANCELLED", "the batch was cancelled before this item was answered"
    ),
}


class BatchPoller:
    def __init__(
        self,
        store: BatchStore,
        billing: BatchBilling,
        catalog: ModelCatalog,
        admission: BatchAdmission,
        config: BatchesConfig,
        ring: KeyRing,
        pipeline: Pipeline | None,
        *,
        metrics: GatewayMetrics | None = None,
        tracer: CallTracer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`pipeline`: what sends failed items again on their own (batches.fallback individual); `tracer`: a span per
        step a round works on."""
        self._store = store
        self._billing = billing
        self._catalog = catalog
        self._admission = admission
        self._config = config
        self._ring = ring
        self._pipeline = pipeline
        self._metrics = metrics
        self._tracer = tracer if tracer is not None else CallTracer(None)
        self.on_progress: Callable[[str], None] = lambda _batch_id: None
        """Told of each batch that got results or changed status (the service's followed result streams)."""
        self._clock = clock
        self.owner = f"{socket.gethostname()[:40]}/{os.getpid()}/{secrets.token_hex(4)}"
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()
        """One round at a time in this process: the lease keeps other processes off a batch, not this one's rounds."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="batch-poller")

    def wake(self) -> None:
        """Starts the next round now (a batch was submitted or cancelled)."""
        self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not end the poller; the next round tries again
                log.exception("batch poller round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_interval_s)
            self._wake.clear()

    async def run_once(self) -> None:
        """One round: every batch this process can claim moved on as far as the provider allows now."""
        async with self._round:
            jobs = await self._store.claim(self.owner, self._clock(), self._config.lease_s, CLAIM_LIMIT)
            for job in jobs:
                renewing = asyncio.create_task(self._renew(job.id), name=f"batch-lease-{job.id}")
                try:
                    await self.advance(job)
                except Exception:  # one batch's failure (a database error, a bug) must not hold up the others
                    log.exception("batch %s: this round failed; the next one resumes it from its recorded step", job.id)
                finally:
                    renewing.cancel()
                    await asyncio.gather(renewing, return_exceptions=True)
                    await self._store.release(job.id, self.owner)
            await self._billing.drop_ended()

    async def _renew(self, batch_id: str) -> None:
        """Keeps the lease while a step lasts (a large upload, a long results file): another process must not take
        the batch over and upload or create it again meanwhile."""
        lease_s = self._config.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            await self._store.renew(batch_id, self.owner, self._clock() + lease_s)

    # --- one batch --------------------------------------------------------------------------------------------------

    async def advance(self, job: BatchJob) -> None:
        target = self._catalog.deployment(job.served_model, job.provider)
        api = batch_api(target.provider) if target is not None else None
        if target is None or api is None:
            await self._end(job, Status.FAILED, f"the config no longer has {job.served_model} on {job.provider}")
            return
        await self._billing.take_back(job)
        await self._billing.bill_unbilled(job)
        try:
            attributes: Attributes = [
                (attr.BATCH_ID, job.id),
                (attr.BATCH_STEP, job.step.value),
                (attr.GEN_AI_PROVIDER_NAME, job.provider),
                (attr.GEN_AI_REQUEST_MODEL, job.served_model),
            ]
            with self._tracer.background("gateway.batch.poll", attributes):
                await self._step(job, api, target)
        except ProviderError as err:
            gone = job.step is Step.SUBMITTED and err.http_status == HTTPStatus.NOT_FOUND
            if err.retryable or (job.step is Step.SUBMITTED and not gone):
                # Once submitted, the batch is the provider's: a refusal to show it (credentials being rotated, say)
                # is waited out, round after round, with a warning.
                log.warning("batch %s: %s; trying again at the next round", job.id, err.message)
                return
            await self._end(job, Status.FAILED, err.message)

    async def _step(self, job: BatchJob, api: BatchApi, target: Target) -> None:
        if job.cancel_requested and job.step in (Step.STORED, Step.UPLOADED):
            await self._end(job, Status.CANCELLED)
            return
        if job.step is Step.STORED:
            lines = await self._lines(job)
            file_id = await api.upload(job.id, lines, target.model) if api.uploads else None
            await self._set(job, step=Step.UPLOADED, input_file_id=file_id)
        if job.step is Step.UPLOADED:
            await self._set(job, step=Step.CREATING, creating_at=self._clock())
            await self._create(job, api, target)
        elif job.step is Step.CREATING:
            assert job.creating_at is not None
            found = await api.find(job.id, job.creating_at, len(await self._lines(job)))
            if found is not None:
                log.info("batch %s: found %s, created before a restart", job.id, found)
                await self._set(job, step=Step.SUBMITTED, provider_batch_id=found, status=Status.VALIDATING)
            else:
                await self._create(job, api, target)
        if job.step is Step.SUBMITTED:
            assert job.provider_batch_id is not None
            state = await api.poll(job.provider_batch_id)
            if job.cancel_requested and not state.status.ended and state.status is not Status.CANCELLING:
                await api.cancel(job.provider_batch_id)
                state = RemoteState(Status.CANCELLING)
            if state.status.ended:
                await self._collect(job, api, target, state)
            elif state.status is not job.status and not job.cancel_requested:
                await self._set(job, status=state.status)

    async def _lines(self, job: BatchJob) -> list[Line]:
        """The items without an outcome: all of them, or those a fallback batch sends again."""
        pending = await self._store.items(job.id, state=ItemState.PENDING)
        return [Line(item.position, loaded(item.body)) for item in pending]

    async def _create(self, job: BatchJob, api: BatchApi, target: Target) -> None:
        lines = [] if api.uploads else await self._lines(job)
        batch_id = await api.create(job.id, job.input_file_id, lines, target.model, job.completion_window)
        await self._set(job, step=Step.SUBMITTED, provider_batch_id=batch_id, status=Status.VALIDATING)

    async def _collect(self, job: BatchJob, api: BatchApi, target: Target, state: RemoteState) -> None:
        """An ended batch: every item's result settled and billed, those the provider failed sent again (per
        batches.fallback), those without a result failed by the batch's end, then the batch ends."""
        assert job.provider_batch_id is not None
        pending = {item.position: item for item in await self._store.items(job.id, state=ItemState.PENDING)}
        page: list[StoredItem] = []
        retry: list[tuple[StoredItem, StoredItem]] = []
        async for remote in api.results(job.provider_batch_id, state, target.model):
            item = pending.pop(remote.position, None)
            if item is not None:
                self._sort(job, item, target, remote, page, retry)
            if len(page) >= SETTLE_PAGE:
                await self._settle(job, page)
        left_over = _LEFT_OVER.get(state.status) or ItemError(
            "UNAVAILABLE", "BATCH_FAILED", state.error or "the provider returned no result for this item"
        )
        for item in pending.values():
            self._sort(job, item, target, RemoteResult(item.position, error=left_over), page, retry)
        await self._settle(job, page)
        if self._config.fallback == "batch":
            if retry and await self._resubmit(job, target, [item for item, _ in retry]):
                return
            await self._settle(job, [outcome for _, outcome in retry])
        else:
            await self._fall_back(job, retry)
        await self._end(job, state.status, state.error)

    def _sort(
        self,
        job: BatchJob,
        item: StoredItem,
        target: Target,
        remote: RemoteResult,
        page: list[StoredItem],
        retry: list[tuple[StoredItem, StoredItem]],
    ) -> None:
        """The item's outcome into `page` (to settle), or with the item into `retry` when the fallback sends it
        again."""
        settled = self._billing.outcome(job, item, target, remote)
        error = remote.error
        if (
            settled.state is ItemState.FAILED
            and error is not None
            and error.code in RETRIED_CODES
            and not item.retried
            and (self._config.fallback == "batch" or (self._config.fallback == "individual" and self._pipeline))
        ):
            retry.append((item, settled))
        else:
            page.append(settled)

    async def _resubmit(self, job: BatchJob, target: Target, items: list[StoredItem]) -> bool:
        """batches.fallback batch: the items a provider failed go back to the start of the state machine, for a new
        provider batch on the route's next target; False when there is no next target."""
        following = self._admission.next_target(job.team, job.model, target, [i.classification for i in items])
        if following is None:
            return False
        await self._store.mark_retried(job.id, [item.custom_id for item in items])
        log.info("batch %s: %d failed items go again to %s", job.id, len(items), following.key)
        await self._set(
            job,
            step=Step.STORED,
            status=Status.QUEUED,
            served_model=following.model.name,
            provider=following.provider.name,
            input_file_id=None,
            provider_batch_id=None,
            creating_at=None,
        )
        return True

    async def _settle(self, job: BatchJob, page: list[StoredItem]) -> None:
        if page:
            await self._billing.settle(job, page)
            page.clear()
            self.on_progress(job.id)

    async def _fall_back(self, job: BatchJob, items: list[tuple[StoredItem, StoredItem]]) -> None:
        """Each item the provider failed, sent again as an ordinary call through the batch's model or route (so the
        route's fallbacks apply), at interactive prices; its own audit record names the batch."""
        if not items:
            return
        key = self._ring.get(job.key_id)
        gate = asyncio.Semaphore(FALLBACK_CONCURRENCY)

        async def one(item: StoredItem, outcome: StoredItem) -> None:
            async with gate:
                if key is None:  # the key was revoked or removed since: the provider's failure stands
                    await self._billing.settle(job, [outcome])
                else:
                    await self._billing.settle(job, [await self._individually(job, key, item)], audited=True)
                self.on_progress(job.id)

        await asyncio.gather(*(one(item, outcome) for item, outcome in items))

    async def _individually(self, job: BatchJob, key: Any, item: StoredItem) -> StoredItem:
        assert self._pipeline is not None
        settled = dataclasses.replace(item, retried=True)
        scope = self._pipeline.call(CallInfo(None, None, "batch", signed_in=key), CallKind.CHAT, "Batch", job.model)
        try:
            async with scope:
                scope.call.record.batch_id = job.id
                result = await scope.complete(loaded(item.body))
        except GatewayError as err:
            settled.request_id = scope.call.request_id
            settled.settled_at = self._clock()
            return failed(settled, ItemError(err.kind.value, err.reason, err.message))
        answer = scope.call.answer
        assert answer.target is not None
        assert answer.usage is not None
        settled.request_id = scope.call.request_id
        settled.settled_at = self._clock()
        settled.state = ItemState.SUCCEEDED
        settled.cost_usd = answer.cost_usd
        settled.outcome = answer_outcome(result, answer.usage, answer.target)
        return settled

    async def _end(self, job: BatchJob, status: Status, error: str = "") -> None:
        """Ends the batch: items still without an outcome fail by its end; what it still holds on budgets is given
        back."""
        left = await self._store.items(job.id, state=ItemState.PENDING)
        if left:
            reason = _LEFT_OVER.get(status) or ItemError("UNAVAILABLE", "BATCH_FAILED", error or "the batch failed")
            now = self._clock()
            await self._billing.settle(job, [failed(_at(item, now), reason) for item in left])
        await self._set(job, step=Step.ENDED, status=status, error=error, ended_at=self._clock())
        await self._billing.release(job.id, job.key_id)
        if self._metrics is not None:
            self._metrics.observe_batch_ended(provider=job.provider, status=status.value)
        self.on_progress(job.id)

    async def _set(self, job: BatchJob, **values: Any) -> None:
        values["updated_at"] = self._clock()
        await self._store.update(
            job.id, **{k: v.value if isinstance(v, Status | Step) else v for k, v in values.items()}
        )
        for name, value in values.items():
            setattr(job, name, value)
        self.on_progress(job.id)


def _at(item: StoredItem, now: float) -> StoredItem:
    item.settled_at = now
    return item
