"""The simulated provider's batch API: no model is called, as for its chat calls (providers/simulated.py).

A provider has it when its `simulation.batch_delay_s` is set (`simulated_batches`). A batch is in progress for that
long after it was created, then completed: each item answered as a Chat call to the simulated model would be (the
same text and counted usage; a failure per its error_rate), in the order of the items. It lets the embedded default
config, with no API key, run a batch end to end. The batches are kept in the gateway's state folder
(providers/simulated_batches.py), so any process serving from it, and the next start, finds them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import orjson

from gateway.batches.adapters.base import BatchApi, Line, RemoteResult, RemoteState, error_of, upstream_id
from gateway.batches.bodies import loaded, stored_body
from gateway.config.schema import ModelConfig
from gateway.errors import ProviderError
from gateway.providers.simulated import SimulatedProvider
from gateway.providers.simulated_batches import BatchTimes
from gateway.records.batches import Status


def simulated_batches(provider: SimulatedProvider) -> SimulatedBatches | None:
    """The provider's batch API; None when its config gives it none (no batch_delay_s)."""
    return SimulatedBatches(provider, provider.batch_delay_s) if provider.batch_delay_s is not None else None


class SimulatedBatches(BatchApi):
    provider: SimulatedProvider

    def __init__(self, provider: SimulatedProvider, delay_s: float) -> None:
        super().__init__(provider)
        self._delay_s = delay_s

    async def find(self, job_id: str, since: float, count: int) -> str | None:
        return await self.provider.batches.find(job_id, since)

    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        batch_id = f"simbatch_{uuid.uuid4().hex[:20]}"
        requests = orjson.dumps([[line.position, stored_body(line.request)] for line in lines])
        await self.provider.batches.add(batch_id, job_id, time.time(), requests)
        return batch_id

    async def poll(self, batch_id: str) -> RemoteState:
        times = await self._times(batch_id)
        if times.cancelled_at is not None:
            return RemoteState(Status.CANCELLED)
        if time.time() - times.created_at < self._delay_s:
            return RemoteState(Status.IN_PROGRESS)
        return RemoteState(Status.COMPLETED)

    async def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        stored = await self.provider.batches.requests(batch_id)
        if stored is None:
            raise self._not_found(batch_id)
        if state.status is not Status.COMPLETED:
            return  # a cancelled batch answered none of its items
        for position, body in orjson.loads(stored):
            try:
                answer = self.provider.result(loaded(body), model, f"sim-{batch_id}-{upstream_id(position)}")
            except ProviderError as err:
                yield RemoteResult(position, error=error_of(err))
            else:
                yield RemoteResult(position, answer=answer)

    async def cancel(self, batch_id: str) -> None:
        await self._times(batch_id)
        now = time.time()
        await self.provider.batches.cancel(batch_id, now, made_after=now - self._delay_s)

    async def _times(self, batch_id: str) -> BatchTimes:
        times = await self.provider.batches.times(batch_id)
        if times is None:
            raise self._not_found(batch_id)
        return times

    def _not_found(self, batch_id: str) -> ProviderError:
        return ProviderError(
            f"simulated provider {self.provider.name!r} has no batch {batch_id}: its batches are kept in the state "
            "folder of the gateway that made them for 2 days (a gateway on another state folder does not see them)",
            provider=self.provider.name,
            http_status=404,
            reason="BATCH_NOT_FOUND",
            retryable=False,
        )
