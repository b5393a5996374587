"""The Batches service's operations, as the gRPC servicer, the HTTP front door and the CLI reach them: submit a
batch, see it, list, cancel, and read its results as they come."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable

from gateway.batches.admission import BatchAdmission, Header, Submitted
from gateway.batches.billing import BatchBilling
from gateway.batches.input_file import read_input
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound
from gateway.observe.metrics import GatewayMetrics
from gateway.pipeline.call import CallInfo
from gateway.records.batches import BatchFile, BatchJob, BatchView, Counts, Status, Step, StoredItem
from gateway.records.governance import KeyRecord, Role
from gateway.store.batches import BatchStore

RESULTS_PAGE = 500
FOLLOW_RECHECK_S = 2.0
"""How often a followed result stream looks at the database when nothing woke it: the results another process
(a --workers sibling) collects reach it this late at most."""
MAX_LIST = 100
DEFAULT_LIST = 20


def new_batch_id() -> str:
    return f"batch_{secrets.token_hex(12)}"


class BatchService:
    def __init__(
        self,
        store: BatchStore,
        admission: BatchAdmission,
        billing: BatchBilling,
        *,
        wake: Callable[[], None] = lambda: None,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`wake` starts the poller's next round at once."""
        self._store = store
        self._admission = admission
        self._billing = billing
        self._metrics = metrics
        self._wake = wake
        self._clock = clock
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def progressed(self, batch_id: str) -> None:
        """The poller's news: result streams following the batch look again."""
        for event in self._waiters.get(batch_id, ()):
            event.set()

    async def submit(self, key: KeyRecord, info: CallInfo, header: Header, items: list[Submitted]) -> BatchView:
        admitted = await self._admission.admit(key, info, header, items)
        target = admitted.target
        now = self._clock()
        job = BatchJob(
            id=new_batch_id(),
            key_id=key.id,
            team=key.team,
            model=header.model,
            served_model=target.model.name,
            provider=target.provider.name,
            completion_window=admitted.window,
            labels=admitted.labels,
            status=Status.QUEUED,
            step=Step.STORED,
            total=len(admitted.items),
            estimate_usd=admitted.estimate_usd,
            created_at=now,
            updated_at=now,
            source_file_id=header.source_file_id,
        )
        for item in admitted.items:
            item.batch_id = job.id
        await self._billing.reserve(job.id, key.id, job.estimate_usd)
        try:
            await self._store.add(job, admitted.items)
        except BaseException:
            await self._billing.release(job.id, key.id)
            raise
        if self._metrics is not None:
            self._metrics.observe_batch_submitted(provider=job.provider, model=job.served_model)
        self._wake()
        return BatchView(job, Counts(job.total, job.total, 0, 0, 0), 0.0)

    async def get(self, key: KeyRecord, batch_id: str) -> BatchView:
        job = await self._visible(key, batch_id)
        return (await self._views([job]))[0]

    async def list_batches(self, key: KeyRecord, limit: int, after: str) -> tuple[list[BatchView], bool]:
        """Newest first; whether more follow."""
        limit = min(limit or DEFAULT_LIST, MAX_LIST)
        before = await self._visible(key, after) if after else None
        key_id, team = _scope(key)
        jobs = await self._store.jobs(key_id=key_id, team=team, limit=limit + 1, before=before)
        return await self._views(jobs[:limit]), len(jobs) > limit

    async def cancel(self, key: KeyRecord, batch_id: str) -> BatchView:
        await self._visible(key, batch_id)
        if not await self._store.request_cancel(batch_id, self._clock()):
            job = await self._visible(key, batch_id)
            raise FailedPrecondition(
                f"batch {batch_id} has ended ({job.status.value}); there is nothing to cancel",
                reason="BATCH_ENDED",
                metadata={"batch_id": batch_id, "status": job.status.value},
            )
        self._wake()
        return await self.get(key, batch_id)

    async def results(self, key: KeyRecord, batch_id: str, *, follow: bool) -> AsyncIterator[StoredItem]:
        """Items with an outcome in the order they got one; with `follow`, until the batch has ended and every item
        was sent."""
        await self._visible(key, batch_id)
        event = asyncio.Event()
        waiters = self._waiters.setdefault(batch_id, set())
        waiters.add(event)
        cursor: tuple[float, str] | None = None
        try:
            while True:
                event.clear()
                job = await self._store.job(batch_id)
                ended = job is not None and job.step is Step.ENDED
                while True:
                    page = await self._store.settled_after(batch_id, cursor, RESULTS_PAGE)
                    for item in page:
                        assert item.settled_at is not None
                        cursor = (item.settled_at, item.custom_id)
                        yield item
                    if len(page) < RESULTS_PAGE:
                        break
                if ended or not follow:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), FOLLOW_RECHECK_S)
        finally:
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(batch_id, None)

    async def items(self, key: KeyRecord, batch_id: str) -> list[StoredItem]:
        """Every item of a visible batch, in input order."""
        await self._visible(key, batch_id)
        return await self._store.items(batch_id)

    # --- files (the HTTP front door's /v1/files) ---------------------------------------------------------------------

    async def upload(self, key: KeyRecord, filename: str, purpose: str, content: bytes) -> BatchFile:
        if purpose != "batch":
            raise InvalidRequest(
                f"purpose {purpose!r}: the gateway keeps files for batches only (purpose batch)",
                reason="UNSUPPORTED_PURPOSE",
                metadata={"param": "purpose"},
            )
        read_input(content)  # refused now rather than when a batch is made from it
        file = BatchFile(
            f"file-{secrets.token_hex(12)}", key.id, key.team, filename, purpose, len(content), self._clock()
        )
        await self._store.add_file(file, content)
        return file

    async def file(self, key: KeyRecord, file_id: str) -> BatchFile:
        file = await self._store.file(file_id)
        key_id, team = _scope(key)
        if file is None or (key_id is not None and file.key_id != key_id) or (team is not None and file.team != team):
            raise NotFound(f"no file {file_id!r} visible to this key", reason="FILE_NOT_FOUND")
        return file

    async def list_files(self, key: KeyRecord, limit: int, after: str) -> tuple[list[BatchFile], bool]:
        """The uploaded files this key may see (as its batches), newest first; whether more follow."""
        limit = min(limit or MAX_LIST, MAX_LIST)
        before = await self.file(key, after) if after else None
        key_id, team = _scope(key)
        files = await self._store.files(key_id=key_id, team=team, limit=limit + 1, before=before)
        return files[:limit], len(files) > limit

    async def file_content(self, key: KeyRecord, file_id: str) -> bytes:
        await self.file(key, file_id)
        return await self._store.file_content(file_id)

    async def _visible(self, key: KeyRecord, batch_id: str) -> BatchJob:
        """The batch, if this key may see it: its own, its team's for a team admin, any for an admin. NOT_FOUND
        otherwise, as for an id that does not exist (another's batch ids are not confirmed)."""
        job = await self._store.job(batch_id)
        key_id, team = _scope(key)
        if job is None or (key_id is not None and job.key_id != key_id) or (team is not None and job.team != team):
            raise NotFound(f"no batch {batch_id!r} visible to this key", reason="BATCH_NOT_FOUND")
        return job

    async def _views(self, jobs: list[BatchJob]) -> list[BatchView]:
        counts = await self._store.counts([job.id for job in jobs])
        empty = (Counts(0, 0, 0, 0, 0), 0.0)
        return [BatchView(job, *counts.get(job.id, empty)) for job in jobs]


def _scope(key: KeyRecord) -> tuple[str | None, str | None]:
    """(key id, team) a key's view of batches is narrowed to; None for no narrowing."""
    if key.role is Role.ADMIN:
        return None, None
    if key.role is Role.TEAM_ADMIN:
        return None, key.team
    return key.id, None
