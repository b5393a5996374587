"""Serving an admitted call: the cached answer, or the route's targets through the executor (retries, failover,
hedging), with the answer's chunks passed through the filters the stages registered. The chain (chain.py) decides
whether and how a call is served; this is the part between its admission and its end."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.cache.entries import CacheEntry
from gateway.chat import ChatDelta, ToolCall, ToolCallDelta, Usage
from gateway.deferral.holder import Holder
from gateway.embeddings import Embedding, EmbedRequest
from gateway.pipeline.call import Call, ChatCall, EmbedCall
from gateway.pipeline.stages.observe import ObserveCall
from gateway.routing.executor import Execution
from gateway.routing.health import HealthBoard
from gateway.routing.queue import Priority, WaitQueue
from gateway.routing.quotas import Quotas

CACHED_CHUNK_CHARS = 64
"""A cached answer is streamed in pieces of about this many characters, cut after a space."""


class Serving:
    """What serves admitted calls: the targets' health, the routes' wait queues and the providers' quotas."""

    def __init__(
        self,
        board: HealthBoard,
        queues: dict[str, WaitQueue],
        quotas: Quotas,
        observe: ObserveCall,
        rng: random.Random,
        clock: Callable[[], float],
        holder: Holder | None,
    ) -> None:
        self._board = board
        self._queues = queues
        self._quotas = quotas
        self._observe = observe
        self._rng = rng
        self._clock = clock
        self._holder = holder

    def execution(self, call: Call[Any], *, batch: bool) -> Execution:
        plan, features = call.plan, call.features
        assert plan is not None
        assert features is not None
        execution = Execution(
            plan,
            features.request,
            call.request_id,
            call.info.deadline,
            self._board,
            self._queues.get(plan.route),
            Priority.BATCH if batch else Priority.INTERACTIVE,
            self._rng,
            features=features,
            quotas=self._quotas,
            span=call.span,
        )
        call.execution = execution
        call.answer.sent_at = self._clock()
        return execution

    async def unary(self, call: ChatCall) -> ChatDelta:
        """The answer as one chunk: from the cache, or from the first target that gives it."""
        answer = call.answer
        if answer.hit is not None:
            return _whole(answer.hit)
        if call.request.defer_up_to_s is not None and self._holder is not None:
            async with self._holder.hold(call) as release:
                call.record.deferred = {**(call.record.deferred or {}), **release.record()}
                # The leader of a prefix group writes the provider's prompt cache, its followers read it.
                call.request.prompt_cache = release.leads or release.prefix_cached
                target, result = await self.execution(call, batch=call.request.batch).unary()
        else:
            target, result = await self.execution(call, batch=call.request.batch).unary()
        answer.target = target
        answer.upstream_id = result.upstream_id
        return ChatDelta(
            result.text,
            [ToolCallDelta(i, c.id, c.name, c.arguments_json) for i, c in enumerate(result.tool_calls)],
            result.finish_reason,
            result.usage,
            result.upstream_model,
            result.logprobs,
        )

    async def embed(self, call: EmbedCall) -> None:
        """Fills in the vectors the cache did not have, from the first target that gives them all."""
        embedded, request = call.embedded, call.request
        missing = [index for index, found in enumerate(embedded) if found is None]
        if not missing:
            return
        wanted = request if len(missing) == len(embedded) else _only(request, missing)
        target, result = await self.execution(call, batch=request.batch).embed(wanted)
        answer = call.answer
        answer.target = target
        answer.upstream_model = result.upstream_model
        if result.prompt_tokens is not None:
            answer.reported = Usage(result.prompt_tokens)
        for index, vector in zip(missing, result.vectors, strict=True):
            embedded[index] = Embedding(vector)

    async def open(self, call: ChatCall) -> AsyncIterator[ChatDelta]:
        """A stream's chunks, once its first is in hand: from the cache, or from the first target that starts one."""
        answer = call.answer
        if answer.hit is not None:
            deltas = _cached_deltas(answer.hit)
        else:
            execution = self.execution(call, batch=call.request.batch)
            opened = await execution.open_stream()
            answer.target = opened.target
            deltas = execution.rest_of_stream(opened)
        answer.first_chunk_s = time.time() - call.record.at
        self._observe.first_chunk(call)
        return deltas


def pass_chunk(call: ChatCall, delta: ChatDelta) -> None:
    """One chunk of the answer through the filters the stages registered, in chain order."""
    answer = call.answer
    if delta.usage is not None:
        answer.reported = delta.usage
    if delta.finish_reason:
        answer.finish_reason = delta.finish_reason
    if delta.upstream_model:
        answer.upstream_model = delta.upstream_model
    for answer_filter in call.filters:
        answer_filter.chunk(delta)
    if answer.edges is not None and delta.text:
        answer.edges.feed(delta.text)


def tails(call: ChatCall) -> list[ChatDelta]:
    """What the filters still hold at the answer's end; each tail passes the filters after the one that held it."""
    held = []
    filters = call.filters
    for index, answer_filter in enumerate(filters):
        tail = answer_filter.finish()
        if tail is None:
            continue
        for later in filters[index + 1 :]:
            later.chunk(tail)
        if call.answer.edges is not None and tail.text:
            call.answer.edges.feed(tail.text)
        held.append(tail)
    return held


def _only(request: EmbedRequest, positions: list[int]) -> EmbedRequest:
    """The request for the inputs at `positions` only (those the cache did not have)."""
    inputs = [request.inputs[i] for i in positions]
    return dataclasses.replace(request, inputs=inputs, text_chars=sum(map(len, inputs)))


class ToolCalls:
    """A unary answer's tool calls, put back together from the chunk and the tails the filters released."""

    __slots__ = ("_parts",)

    def __init__(self, parts: list[ToolCallDelta]) -> None:
        self._parts = {p.index: [p.id, p.name, p.arguments_delta] for p in parts}

    def add(self, parts: list[ToolCallDelta]) -> None:
        for part in parts:
            self._parts[part.index][2] += part.arguments_delta

    def whole(self) -> list[ToolCall]:
        return [ToolCall(call_id, name, arguments) for call_id, name, arguments in self._parts.values()]


def _whole(entry: CacheEntry) -> ChatDelta:
    return ChatDelta(
        entry.text,
        [ToolCallDelta(i, c.id, c.name, c.arguments_json) for i, c in enumerate(entry.tool_calls)],
        entry.finish_reason,
        entry.usage,
        entry.upstream_model,
    )


async def _cached_deltas(entry: CacheEntry) -> AsyncIterator[ChatDelta]:
    """A stored answer as a stream: text in pieces cut at spaces, its tool calls, then the end."""
    text = entry.text
    start = 0
    while start < len(text):
        end = text.find(" ", start + CACHED_CHUNK_CHARS)
        end = len(text) if end < 0 else end + 1
        yield ChatDelta(text=text[start:end])
        start = end
    if entry.tool_calls:
        yield ChatDelta(
            tool_calls=[
                ToolCallDelta(i, call.id, call.name, call.arguments_json) for i, call in enumerate(entry.tool_calls)
            ]
        )
    yield ChatDelta(finish_reason=entry.finish_reason, usage=entry.usage, upstream_model=entry.upstream_model)
