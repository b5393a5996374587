"""The simulated provider's batch API: no model is called, as for its chat calls (providers/simulated.py).

A provider has it when its `simulation.batch_delay_s` is set (`simulated_batches`). A batch is in progress for that
long after it was created, then completed: each item answered as a
Chat call to the simulated model would be (the same text and counted usage; a failure per its error_rate), in the
order of the items. It lets the embedded default config, with no API key, run a batch end to end. Batches are held
by the provider object, so only the process that created one sees it: another process polling it (after a restart,
or a --workers sibling that took the batch over) gets NOT_FOUND and the batch fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

from gateway.batches.adapters.base import BatchApi, Line, RemoteResult, RemoteState, error_of, upstream_id
from gateway.batches.jobs import Status
from gateway.config.schema import ModelConfig
from gateway.errors import ProviderError
from gateway.providers.simulated import SimulatedBatch, SimulatedProvider

KEEP_S = 2 * 86_400.0
"""How long a batch is held after its creation: past the 24 h completion window, so a results fetch finds it."""


def simulated_batches(provider: SimulatedProvider) -> SimulatedBatches | None:
    """The provider's batch API; None when its config gives it none (no batch_delay_s)."""
    return SimulatedBatches(provider, provider.batch_delay_s) if provider.batch_delay_s is not None else None


class SimulatedBatches(BatchApi):
    provider: SimulatedProvider

    def __init__(self, provider: SimulatedProvider, delay_s: float) -> None:
        super().__init__(provider)
        self._delay_s = delay_s

    async def find(self, job_id: str, since: float, count: int) -> str | None:
        return next((id_ for id_, batch in self.provider.batches.items() if batch.job_id == job_id), None)

    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        now = time.time()
        batches = self.provider.batches
        for old in [id_ for id_, batch in batches.items() if batch.created_at < now - KEEP_S]:
            del batches[old]
        batch_id = f"simbatch_{uuid.uuid4().hex[:20]}"
        batches[batch_id] = SimulatedBatch(job_id, now, model, [(line.position, line.request) for line in lines])
        return batch_id

    async def poll(self, batch_id: str) -> RemoteState:
        batch = self._batch(batch_id)
        if batch.cancelled_at is not None:
            return RemoteState(Status.CANCELLED)
        if time.time() - batch.created_at < self._delay_s:
            return RemoteState(Status.IN_PROGRESS)
        return RemoteState(Status.COMPLETED)

    async def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        batch = self._batch(batch_id)
        if state.status is not Status.COMPLETED:
            return  # a cancelled batch answered none of its items
        for position, request in batch.requests:
            try:
                answer = self.provider.result(request, model, f"sim-{batch_id}-{upstream_id(position)}")
            except ProviderError as err:
                yield RemoteResult(position, error=error_of(err))
            else:
                yield RemoteResult(position, answer=answer)

    async def cancel(self, batch_id: str) -> None:
        batch = self._batch(batch_id)
        if time.time() - batch.created_at < self._delay_s:
            batch.cancelled_at = time.time()

    def _batch(self, batch_id: str) -> SimulatedBatch:
        batch = self.provider.batches.get(batch_id)
        if batch is None:
            raise ProviderError(
                f"simulated provider {self.provider.name!r} has no batch {batch_id}: simulated batches live in the "
                "process that created them",
                provider=self.provider.name,
                http_status=404,
                reason="BATCH_NOT_FOUND",
                retryable=False,
            )
        return batch
