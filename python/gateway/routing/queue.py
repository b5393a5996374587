"""A bounded per-route waiting room for requests whose every target is rate-limited.

Requests wait for the earliest target to come back instead of failing at once; past the room's size or its longest
wait they get RESOURCE_EXHAUSTED with the time to retry. Interactive requests leave the room before batch ones.
"""

from __future__ import annotations

import asyncio
from enum import IntEnum

from gateway.config.routes import QueueConfig
from gateway.errors import RateLimited


class Priority(IntEnum):
    INTERACTIVE = 0
    BATCH = 1


class WaitQueue:
    def __init__(self, config: QueueConfig) -> None:
        self._config = config
        self._waiting = {Priority.INTERACTIVE: 0, Priority.BATCH: 0}
        self._no_interactive = asyncio.Event()
        self._no_interactive.set()

    @property
    def depth(self) -> int:
        return sum(self._waiting.values())

    async def wait(self, seconds: float, priority: Priority, waited_s: float) -> None:
        """Waits `seconds` (the earliest target's cooldown); `waited_s` is what this request already waited."""
        max_wait_s = self._config.max_wait_ms / 1000
        if self.depth >= self._config.max_size or waited_s + seconds > max_wait_s:
            full = self.depth >= self._config.max_size
            raise RateLimited(
                "every target of this route is rate-limited"
                + (" and the route's queue is full" if full else f" for longer than the queue's {max_wait_s:g} s"),
                reason="ALL_TARGETS_RATE_LIMITED",
                retry_after=seconds,
            )
        self._waiting[priority] += 1
        if priority is Priority.INTERACTIVE:
            self._no_interactive.clear()
        try:
            await asyncio.sleep(seconds)
            while priority is Priority.BATCH and self._waiting[Priority.INTERACTIVE]:
                await self._no_interactive.wait()
        finally:
            self._waiting[priority] -= 1
            if not self._waiting[Priority.INTERACTIVE]:
                self._no_interactive.set()
