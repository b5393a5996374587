"""The process's own bound on calls in flight: past it a call is refused at once, with a status the caller can act
on (RESOURCE_EXHAUSTED, GATEWAY_OVERLOADED, RetryInfo) and, since observe and audit come first, an audit record and
its count in the metrics."""

from __future__ import annotations

from typing import Any

from gateway.errors import Overloaded
from gateway.pipeline.call import Call
from gateway.pipeline.stage import BaseStage

RETRY_AFTER_S = 1.0
"""The delay RetryInfo suggests. Calls end at their own pace (a long stream's answer takes seconds), so the gateway
cannot know when a slot frees; a second lets a burst's head drain without making an interactive caller wait long,
and clients add their own jittered backoff on top."""


class ShedOverload(BaseStage):
    """A counter on the event loop, nothing more: a refusal must cost less than the call it refuses. The slot is
    taken in `enter` and given back in `exit`, which runs only for calls whose `enter` returned."""

    name = "overload"

    def __init__(self, max_in_flight: int) -> None:
        self._max = max_in_flight
        self.in_flight = 0

    def enter(self, call: Call[Any]) -> None:
        if self.in_flight >= self._max:
            raise Overloaded(
                f"the gateway is serving {self._max} calls, its bound (server.max_in_flight); retry shortly",
                retry_after=RETRY_AFTER_S,
            )
        self.in_flight += 1

    def exit(self, call: Call[Any], error: BaseException | None) -> None:
        self.in_flight -= 1
