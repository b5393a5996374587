"""The key's own rate limits and its budgets: a request, its estimated tokens, a slot in flight and the estimated
cost on every budget that applies, taken all or none at admission and given back (tokens corrected to what was
used, the reservation replaced by the real cost) when the call ends. In this process or shared through Redis, by
the backend the config names."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from gateway.pipeline.call import Call
from gateway.pipeline.stage import BaseStage
from gateway.state.admission import LocalLimits, SharedLimits, Ticket


class AdmitLimits(BaseStage):
    name = "limits"

    def __init__(self, limits: LocalLimits | SharedLimits) -> None:
        self._limits = limits

    def enter(self, call: Call[Any]) -> Awaitable[None] | None:
        key = call.key
        assert key is not None
        estimate = call.estimate
        tokens = estimate.tokens if estimate is not None and key.limits.tpm is not None else 0
        admitted = self._limits.admit(call.request_id, key, tokens, estimate.cost_usd if estimate else None)
        if isinstance(admitted, Ticket):
            call.ticket = admitted
            return None
        return self._wait(call, admitted)

    @staticmethod
    async def _wait(call: Call[Any], admitted: Awaitable[Ticket]) -> None:
        call.ticket = await admitted

    def exit(self, call: Call[Any], error: BaseException | None) -> Awaitable[None] | None:
        ticket = call.ticket
        if ticket is None:
            return None
        return self._limits.settle(ticket, call.answer.upstream_tokens, call.record.cost_usd)
