"""Runs a RoutePlan: attempts with per-attempt timeouts, retries with backoff, failover, circuit breakers, waiting
for rate-limited targets, and hedging. Every attempt is recorded so the caller can see what happened."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TypeVar

from gateway.chat import ChatDelta, ChatRequest, ChatResult
from gateway.embeddings import EmbedRequest, EmbedResult
from gateway.errors import DeadlineExceeded, ErrorKind, GatewayError, ProviderError
from gateway.observe.spans import NOOP_CALL, CallSpan
from gateway.providers.base import UpstreamCall
from gateway.providers.batches import embed_all
from gateway.routing.backoff import backoff_s
from gateway.routing.catalog import Target
from gateway.routing.features import RequestFeatures
from gateway.routing.health import HealthBoard, TargetHealth
from gateway.routing.queue import Priority, WaitQueue
from gateway.routing.quotas import Quotas
from gateway.routing.router import RoutePlan, fits
from gateway.routing.strategies import estimated_answer_tokens

T = TypeVar("T")
_Attempt = Callable[[Target, "Attempt", TargetHealth, UpstreamCall], Awaitable[T]]
"""One attempt at a target: its record in `attempts` and its health passed in, looked up once."""
# How long a target rests after a 429 that named no Retry-After.
DEFAULT_COOLDOWN_S = 1.0


@dataclass(slots=True)
class Attempt:
    target: Target
    retry: int
    outcome: str = "ok"
    """ok, error, or cancelled (a hedge that lost the race)."""
    code: str = ""
    reason: str = ""
    latency_ms: float = 0.0
    hedged: bool = False
    reserved_tokens: int = 0
    """Tokens taken from the target's quota for this attempt (settled when it ends)."""
    quota_slot: str = ""
    """The attempt's name in the quota's calls in flight (empty without a quota)."""


@dataclass(slots=True)
class OpenStream:
    record: Attempt
    target: Target
    deltas: AsyncIterator[ChatDelta]
    first: ChatDelta
    started: float
    first_at: float


class Execution:
    """One call's run through its plan."""

    def __init__(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        request_id: str,
        deadline: float | None,
        board: HealthBoard,
        queue: WaitQueue | None,
        priority: Priority,
        rng: random.Random,
        features: RequestFeatures,
        quotas: Quotas,
        span: CallSpan = NOOP_CALL,
    ) -> None:
        self.plan = plan
        self._span = span
        self._features = features
        self._quotas = quotas
        self.attempts: list[Attempt] = []
        self._request = request
        self._request_id = request_id
        self._deadline = deadline
        self._board = board
        self._queue = queue
        self._priority = priority
        self._rng = rng
        self._excluded: set[str] = set()
        self._waited_s = 0.0
        self._reservations: dict[str, tuple[int, str]] = {}
        self._attempt_limit_s = _ms(plan.timeouts.total_ms)
        """The route's own bound on one attempt (seconds), if it sets one."""

    @property
    def waited_s(self) -> float:
        """Seconds this call waited in its route's queue for a target's quota."""
        return self._waited_s

    def unary(self) -> Coroutine[None, None, tuple[Target, ChatResult]]:
        """The answer from the first target that gives it. The run itself, not a coroutine around it: a frame less
        on every call."""

        async def attempt(
            target: Target, record: Attempt, health: TargetHealth, upstream: UpstreamCall
        ) -> tuple[Target, ChatResult]:
            started = time.monotonic()
            result = await target.provider.chat(self._request, target.model, upstream)
            elapsed = time.monotonic() - started
            health.observe(elapsed, elapsed)
            used = result.usage.total_tokens if result.usage is not None else record.reserved_tokens
            self._quotas.settle(target, record.reserved_tokens, used, record.quota_slot)
            return target, result

        return self._run(attempt)

    def embed(self, request: EmbedRequest) -> Coroutine[None, None, tuple[Target, EmbedResult]]:
        """Vectors for every input of `request` from one target: batches split and rejoined in order; a failed batch
        fails the attempt, and a retry or failover sends every input again (a route's targets share one embedding
        space, and one call's vectors never mix two targets)."""

        async def attempt(
            target: Target, record: Attempt, health: TargetHealth, upstream: UpstreamCall
        ) -> tuple[Target, EmbedResult]:
            started = time.monotonic()
            result = await embed_all(target.provider, request, target.model, upstream)
            elapsed = time.monotonic() - started
            health.observe(elapsed, elapsed)
            used = result.prompt_tokens if result.prompt_tokens is not None else record.reserved_tokens
            self._quotas.settle(target, record.reserved_tokens, used, record.quota_slot)
            return target, result

        return self._run(attempt)

    async def open_stream(self) -> OpenStream:
        """Attempts until one target produced its first chunk: a failure before it fails over invisibly."""

        async def attempt(target: Target, record: Attempt, health: TargetHealth, upstream: UpstreamCall) -> OpenStream:
            started = time.monotonic()
            deltas = aiter(target.provider.stream(self._request, target.model, upstream))
            try:
                first = await anext(deltas)
            except BaseException:
                await _close(deltas)
                raise
            return OpenStream(record, target, deltas, first, started, time.monotonic())

        return await self._run(attempt, timeout_s=self._ttft_timeout())

    async def rest_of_stream(self, stream: OpenStream) -> AsyncIterator[ChatDelta]:
        """The chunks after the first. A failure now ends the stream with its status: no splice of two answers."""
        # A timer per chunk only for a route's stall limit. The caller's deadline needs none: gRPC cancels the call
        # when it passes, and the provider's own timeout, bounded by it when the attempt began, ends the upstream
        # read. A timer per chunk costs a timer handle, its context and a Timeout for every chunk of every stream.
        stall = _ms(self.plan.timeouts.stall_ms)
        health = self._board[stream.target.key]
        health.in_flight += 1
        used = stream.record.reserved_tokens
        try:
            yield stream.first
            while True:
                try:
                    if stall is None:
                        delta = await anext(stream.deltas)
                    else:
                        async with asyncio.timeout(self._stall_timeout(stall)):
                            delta = await anext(stream.deltas)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    health.breaker.record_failure()
                    raise ProviderError(
                        f"provider {stream.target.provider.name!r} stalled mid-stream; the stream was abandoned",
                        provider=stream.target.provider.name,
                        reason="UPSTREAM_STALLED",
                    ) from None
                except ProviderError:
                    health.breaker.record_failure()
                    raise
                if delta.usage is not None:
                    used = delta.usage.total_tokens
                yield delta
            health.breaker.record_success()
            health.observe(stream.first_at - stream.started, time.monotonic() - stream.started)
        finally:
            health.in_flight -= 1
            self._quotas.settle(stream.target, stream.record.reserved_tokens, used, stream.record.quota_slot)
            await _close(stream.deltas)

    async def _run(self, attempt: _Attempt[T], timeout_s: float | None = None) -> T:
        last_error: GatewayError | None = None
        for number in range(self.plan.retries.max_attempts):
            target = await self._next_target(number, last_error)
            if target is None:
                break
            try:
                if self.plan.hedge is None:
                    # No task per attempt unless racing, and no coroutine around the one attempt: each costs more
                    # than the rest of the attempt's bookkeeping.
                    return await self._one(attempt, target, number, timeout_s, hedged=False)
                return await self._hedged(attempt, target, number, timeout_s)
            except ProviderError as err:
                last_error = err
                if err.kind is ErrorKind.INVALID_ARGUMENT:
                    raise  # the request itself is bad: any other target would refuse it too
                if not err.retryable:
                    self._excluded.add(target.key)  # e.g. this target's key or model is wrong: others may work
        raise self._exhausted(last_error)

    async def _hedged(
        self,
        attempt: _Attempt[T],
        target: Target,
        number: int,
        timeout_s: float | None,
    ) -> T:
        """The attempt, raced by a second target's once it has taken longer than the hedge's delay."""
        first = asyncio.ensure_future(self._one(attempt, target, number, timeout_s, hedged=False))
        done, _ = await asyncio.wait({first}, timeout=self._hedge_delay(target))
        if done:
            return first.result()
        second_target = await self._hedge_partner(target)
        if second_target is None:
            return await first
        second = asyncio.ensure_future(self._one(attempt, second_target, number, timeout_s, hedged=True))
        pending = {first, second}
        error: BaseException | None = None
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        return task.result()
                    error = task.exception()
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, GatewayError):
                    await task
        assert error is not None
        raise error

    async def _one(
        self,
        attempt: _Attempt[T],
        target: Target,
        number: int,
        timeout_s: float | None,
        *,
        hedged: bool,
    ) -> T:
        tokens, slot = self._reservations.pop(target.key, (0, ""))
        record = Attempt(target, number, hedged=hedged, reserved_tokens=tokens, quota_slot=slot)
        self.attempts.append(record)
        health = self._board[target.key]
        started = time.monotonic()
        # The provider bounds its own call by the caller's deadline (UpstreamCall.timeout_s); a timer of our own is
        # set only for the route's explicit per-attempt limits, which end the attempt, not the call.
        limit = self._attempt_limit_s
        if timeout_s is not None:
            limit = timeout_s if limit is None else min(timeout_s, limit)
        left = None if self._deadline is None else max(0.0, self._deadline - started)
        upstream = UpstreamCall(self._request_id, left if limit is None or left is None else min(left, limit))
        traced = self._span.start_attempt(
            provider=target.provider.name,
            model=target.model.name,
            attempt=len(self.attempts) - 1,
            retry=number,
            hedged=hedged,
        )
        traced.inject(upstream.headers)  # W3C trace context on to the provider
        health.in_flight += 1
        try:
            if limit is None:
                result = await attempt(target, record, health, upstream)
            else:
                async with asyncio.timeout(limit):
                    result = await attempt(target, record, health, upstream)
        except TimeoutError:
            self._quotas.settle(target, record.reserved_tokens, 0, record.quota_slot)
            error = self._timed_out(target, limit)
            if isinstance(error, ProviderError):
                self._fail(record, health, error)
            else:
                record.outcome, record.code = "error", error.kind.value
            raise error from None
        except ProviderError as err:
            self._quotas.settle(target, record.reserved_tokens, 0, record.quota_slot)
            if err.reason == "UPSTREAM_TIMEOUT" and self._deadline_passed():
                record.outcome, record.code = "error", ErrorKind.DEADLINE_EXCEEDED.value
                raise DeadlineExceeded(
                    f"provider {target.provider.name!r} did not answer before the call's deadline"
                ) from None
            self._fail(record, health, err)
            raise
        except asyncio.CancelledError:
            record.outcome = "cancelled"
            self._quotas.settle(target, record.reserved_tokens, 0, record.quota_slot)
            raise
        finally:
            health.in_flight -= 1
            record.latency_ms = (time.monotonic() - started) * 1000
            traced.end(outcome=record.outcome, code=record.code)
        if not isinstance(result, OpenStream):
            health.breaker.record_success()
        return result

    @staticmethod
    def _fail(record: Attempt, health: TargetHealth, err: ProviderError) -> None:
        """A 429 rests the target until its Retry-After instead of counting against its breaker; a request the
        provider refused as malformed says nothing about the target's health."""
        record.outcome = "error"
        record.code = err.kind.value
        record.reason = err.reason
        if err.kind is ErrorKind.RESOURCE_EXHAUSTED:
            health.cool_down(err.retry_after if err.retry_after is not None else DEFAULT_COOLDOWN_S)
        elif err.kind is not ErrorKind.INVALID_ARGUMENT:
            health.breaker.record_failure()

    def _deadline_passed(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline - 0.005

    def _timed_out(self, target: Target, limit: float | None) -> ProviderError | DeadlineExceeded:
        if self._deadline_passed():
            return DeadlineExceeded("the call's deadline passed before the provider answered")
        return ProviderError(
            f"provider {target.provider.name!r} did not answer within {1000 * (limit or 0):.0f} ms",
            provider=target.provider.name,
            reason="UPSTREAM_TIMEOUT",
        )

    async def _next_target(self, number: int, last_error: GatewayError | None) -> Target | None:
        """The next candidate to try: round-robin from the plan's order, skipping excluded, open and cooling targets.
        Before trying a target again it backs off; when every target is cooling it waits in the route's queue."""
        candidates = [t for t in self.plan.candidates if t.key not in self._excluded and fits(t, self._features)]
        if not candidates:
            return None
        shift = number % len(candidates)
        rotated = candidates[shift:] + candidates[:shift] if shift else candidates
        while True:
            self._check_deadline()
            cooling: list[float] = []
            for target in rotated:
                health = self._board[target.key]
                wait = health.cooling_for()
                if not wait and target.model.quota is not None:
                    wait = await self._take_quota(target)
                if wait > 0:
                    cooling.append(wait)
                    continue
                if not health.breaker.allow():
                    self._give_back(target)
                    continue
                if number >= len(candidates) and last_error is not None:
                    # Trying a target again: back off. A provider's Retry-After is already kept by the cooldown above.
                    await self._sleep(backoff_s(number - len(candidates) + 1, self.plan.retries, self._rng))
                return target
            if not cooling:
                raise ProviderError(
                    f"every target of {self.plan.route or self.plan.candidates[0].model.name!r} has an open circuit "
                    "breaker after repeated failures; retry shortly",
                    provider=",".join(t.provider.name for t in candidates),
                    reason="CIRCUIT_OPEN",
                    retry_after=1.0,
                )
            wait = min(cooling)
            if self._queue is None:
                # No queue: a retry may still wait out the provider's Retry-After, as far as the backoff cap allows.
                if number == 0 or wait > self.plan.retries.max_backoff_ms / 1000:
                    raise ProviderError(
                        "every target is rate-limited by its provider",
                        provider=",".join(t.provider.name for t in candidates),
                        kind=ErrorKind.RESOURCE_EXHAUSTED,
                        reason="ALL_TARGETS_RATE_LIMITED",
                        retry_after=wait,
                    )
                await self._sleep(wait)
                continue
            await self._queue.wait(wait, self._priority, self._waited_s)
            self._waited_s += wait

    async def _hedge_partner(self, target: Target) -> Target | None:
        for candidate in self.plan.candidates:
            if candidate is target or candidate.key in self._excluded or not fits(candidate, self._features):
                continue
            health = self._board[candidate.key]
            if health.cooling_for() > 0 or (
                candidate.model.quota is not None and await self._take_quota(candidate) > 0
            ):
                continue
            if health.breaker.allow():
                return candidate
            self._give_back(candidate)
        return None

    async def _take_quota(self, target: Target) -> float:
        """Takes the target's quota for one call (0.0), or says how long until it would admit."""
        if target.model.quota is None:
            return 0.0
        tokens = self._features.prompt_tokens(target.model) + estimated_answer_tokens(
            target.model, self._request.max_tokens
        )
        slot = f"{self._request_id}:{target.key}:{len(self.attempts)}"
        wait = await self._quotas.take(target, tokens, slot)
        if wait == 0.0:
            self._reservations[target.key] = (tokens, slot)
        return wait

    def _give_back(self, target: Target) -> None:
        taken = self._reservations.pop(target.key, None)
        if taken is not None:
            self._quotas.give_back(target, *taken)

    def _hedge_delay(self, target: Target) -> float:
        hedge = self.plan.hedge
        assert hedge is not None
        observed = self._board[target.key].ttft_percentile(hedge.percentile)
        delay_ms = hedge.max_delay_ms if observed is None else observed * 1000
        return min(max(delay_ms, hedge.min_delay_ms), hedge.max_delay_ms) / 1000

    def _ttft_timeout(self) -> float | None:
        ttft = self.plan.timeouts.ttft_ms
        return ttft / 1000 if ttft is not None else None

    def _stall_timeout(self, stall: float) -> float:
        left = self._left()
        return stall if left is None else min(stall, left)

    def _left(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise DeadlineExceeded("the call's deadline passed before any target answered")

    async def _sleep(self, seconds: float) -> None:
        left = self._left()
        if left is not None and seconds >= left:
            raise DeadlineExceeded("the call's deadline leaves no time for another attempt")
        await asyncio.sleep(seconds)

    def _exhausted(self, last_error: GatewayError | None) -> GatewayError:
        if last_error is None:
            return ProviderError("no target could take the call", provider="", reason="NO_TARGET")
        if len(self.attempts) > 1:
            last_error.message = f"all {len(self.attempts)} attempts failed; last: {last_error.message}"
            last_error.args = (last_error.message,)
        return last_error


def _ms(value: float | None) -> float | None:
    return value / 1000 if value is not None else None


async def _close(deltas: AsyncIterator[ChatDelta]) -> None:
    aclose = getattr(deltas, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
