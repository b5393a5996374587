"""The holder: calls that can wait are held per target (and per price window they wait for) until `max_batch` of
them gather or the first one's wait ends, then released together, prefix groups one first and the rest after it.

A held call keeps its own task (the caller's, or the detached one of server/deferred.py): the holder only decides
when each may go, so every answer goes back to its own call whatever order the provider answers in.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.chat import ChatRequest
from gateway.config.deferral import DeferralConfig
from gateway.deferral.grouping import prefix_key, shared_part, waves
from gateway.tokens import TokenCounter

if TYPE_CHECKING:  # the pipeline imports the holder
    from gateway.pipeline.call import ChatCall
    from gateway.routing.catalog import Target

ANSWER_SHARE = 0.25
"""The share of output tokens assumed when comparing price windows: chat prompts are mostly longer than answers."""


@dataclass(slots=True)
class Release:
    """How a held call was released, as its audit record keeps it."""

    group: str = ""
    held_s: float = 0.0
    prefix_cached: bool = False
    """It went after another call of its group with the same long prefix."""
    leads: bool = False
    """It goes first of a prefix group: it writes the provider's prompt cache for the others."""
    waited_for_window: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "held_ms": round(self.held_s * 1000, 3),
            "prefix_cached": self.prefix_cached,
            "waited_for_window": self.waited_for_window,
        }


@dataclass(eq=False, slots=True)
class _Held:
    prefix: str
    """The prefix's digest when it is long enough to cache, else empty."""
    release_at: float
    """Epoch seconds (the holder's clock) at which the call must go."""
    accepted: float
    window: str
    group: str = ""
    go: asyncio.Future[Release] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    followers: list[_Held] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Queue:
    items: list[_Held] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    due: float = float("inf")


class Holder:
    def __init__(self, config: DeferralConfig, counter: TokenCounter, clock: Callable[[], float]) -> None:
        self._config = config
        self._counter = counter
        self._clock = clock
        self._queues: dict[tuple[str, float], _Queue] = {}
        self._groups = itertools.count(1)

    @asynccontextmanager
    async def hold(self, call: ChatCall) -> AsyncIterator[Release]:
        """Returns when the call may go, with how it was released; on leaving, a prefix group's leader lets its
        followers go (whether or not it got its answer: they must not wait forever)."""
        assert call.plan is not None
        request = call.request
        assert request.defer_up_to_s is not None
        target = call.plan.candidates[0]
        now = self._clock()
        wait = max(request.defer_up_to_s, 0.0)
        cheaper = target.model.schedule.next_cheaper(now, now + wait, ANSWER_SHARE) if wait > 0 else None
        if cheaper is not None:
            release_at, window = cheaper, target.model.schedule.at_uncached(cheaper).window
        else:
            release_at, window = now + min(wait, self._config.max_wait_s), ""
        item = _Held(self._prefix(request, target), release_at, now, window)
        bucket = (target.key, cheaper or 0.0)
        self._add(bucket, item)
        try:
            release = await item.go
        except BaseException:
            self._drop(bucket, item)
            self._free_followers(item)
            raise
        try:
            yield release
        finally:
            self._free_followers(item)

    def _prefix(self, request: ChatRequest, target: Target) -> str:
        key = prefix_key(request)
        if not key:
            return ""
        model = target.model
        tokens = self._counter.count_chat(shared_part(request), model.upstream, model.tokenizer).tokens
        if request.tools:
            tokens += self._counter.count_text(repr(request.tools), model.upstream, model.tokenizer).tokens
        return key if tokens >= self._config.min_prefix_tokens else ""

    def _add(self, bucket: tuple[str, float], item: _Held) -> None:
        queue = self._queues.get(bucket)
        if queue is None:
            queue = self._queues[bucket] = _Queue()
        queue.items.append(item)
        if len(queue.items) >= self._config.max_batch:
            self._flush(bucket)
        elif item.release_at < queue.due:
            self._arm(bucket, queue, item.release_at)

    def _arm(self, bucket: tuple[str, float], queue: _Queue, due: float) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
        loop = asyncio.get_running_loop()
        queue.due = due
        queue.timer = loop.call_at(loop.time() + max(due - self._clock(), 0.0), self._flush, bucket)

    def _drop(self, bucket: tuple[str, float], item: _Held) -> None:
        """A held call whose caller went away before its release."""
        queue = self._queues.get(bucket)
        if queue is not None and item in queue.items:
            queue.items.remove(item)
            if not queue.items:
                self._close(bucket, queue)

    def _close(self, bucket: tuple[str, float], queue: _Queue) -> None:
        if queue.timer is not None:
            queue.timer.cancel()
        del self._queues[bucket]

    def _flush(self, bucket: tuple[str, float]) -> None:
        queue = self._queues.get(bucket)
        if queue is None:
            return
        released, queue.items = queue.items[: self._config.max_batch], queue.items[self._config.max_batch :]
        if queue.items:
            self._arm(bucket, queue, min(item.release_at for item in queue.items))
        else:
            self._close(bucket, queue)
        group = f"{bucket[0]}#{next(self._groups)}"
        now = self._clock()
        at_once, chains = waves(released, lambda item: item.prefix)
        for item in at_once:
            self._go(item, Release(group, now - item.accepted, waited_for_window=item.window))
        for leader, followers in chains:
            leader.followers, leader.group = followers, group
            self._go(leader, Release(group, now - leader.accepted, leads=True, waited_for_window=leader.window))

    def _free_followers(self, leader: _Held) -> None:
        followers, leader.followers = leader.followers, []
        now = self._clock()
        for item in followers:
            self._go(
                item, Release(leader.group, now - item.accepted, prefix_cached=True, waited_for_window=item.window)
            )

    @staticmethod
    def _go(item: _Held, release: Release) -> None:
        if not item.go.done():
            item.go.set_result(release)
