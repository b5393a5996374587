"""What the call is billed for: the provider's reported usage when it gives one (which also teaches the token
estimator), else the gateway's own count; a cache hit's stored size at the hit's price; and for an answer cut short,
the prompt and what went out before the cut."""

from __future__ import annotations

from typing import Any

from gateway.chat import ChatDelta, Usage
from gateway.ledger.cost import cost_usd, uncached_cost_usd
from gateway.pipeline.call import Call, ChatCall, EmbedCall
from gateway.pipeline.stage import BaseStage
from gateway.records.prices import Prices
from gateway.tokens import TokenCounter


class SettleUsage(BaseStage):
    name = "usage"

    def __init__(self, counter: TokenCounter, hit_cost_usd: float) -> None:
        self._counter = counter
        self._hit_cost_usd = hit_cost_usd

    def enter(self, call: ChatCall) -> None:
        call.filters.append(_CountTokens(call, self._counter))

    def end(self, call: ChatCall) -> None:
        answer = call.answer
        target = answer.target
        assert target is not None
        if answer.hit is not None:
            stored = answer.hit.usage
            # Reported as cached: the caller sees the answer's size, and that none of it came from a provider now.
            answer.usage = Usage(stored.prompt_tokens, stored.completion_tokens, stored.prompt_tokens)
            answer.cost_usd = self._hit_cost_usd
            return
        model = target.model
        reported = answer.reported
        assert call.features is not None
        if reported is not None:
            if reported.prompt_tokens and not self._counter.is_exact(model.upstream, model.tokenizer):
                self._counter.observe_usage(model.upstream, call.features.prompt_tokens(model), reported.prompt_tokens)
            usage = reported
        else:
            usage = Usage(call.features.prompt_tokens(model), answer.counted_tokens)
        answer.usage = usage
        answer.cost_usd = cost_usd(usage, _prices(call))

    def exit(self, call: ChatCall, error: BaseException | None) -> None:
        answer = call.answer
        target = answer.target
        record = call.record
        if target is not None:
            if answer.usage is None:
                if answer.hit is not None:
                    # A stream from the cache cut short: no provider was called, the hit costs what any hit does.
                    answer.usage, answer.cost_usd = Usage(), self._hit_cost_usd
                else:
                    assert call.features is not None
                    answer.usage = Usage(call.features.prompt_tokens(target.model), answer.counted_tokens)
                    answer.cost_usd = cost_usd(answer.usage, _prices(call))
            usage = answer.usage
            answer.upstream_tokens = 0 if answer.hit is not None else usage.total_tokens
            record.served_model = target.model.name
            record.provider = target.provider.name
            record.prompt_tokens = usage.prompt_tokens
            record.completion_tokens = usage.completion_tokens
            record.cached_tokens = usage.cached_prompt_tokens
            record.cost_usd = answer.cost_usd
            if answer.hit is None and target.model.schedule.scheduled:
                record.prices = _prices(call).record()
            if record.deferred is not None and call.features is not None:
                # Sent at once, it would have gone at the price in force when it came (read on the gateway's price
                # clock when the route was planned, as the price it was sent at is), with no prefix cached.
                interactive = uncached_cost_usd(usage, target.model.schedule.at(call.features.at))
                record.deferred["interactive_usd"] = interactive
        record_attempts(call)


class SettleEmbedUsage(BaseStage):
    """An embedding call is billed the inputs a provider embedded now (its reported tokens, else the gateway's
    count) at the model's input price, plus the cache's price for each input it served. The caller's usage counts
    every input, those from the cache as cached."""

    name = "usage"

    def __init__(self, counter: TokenCounter, hit_cost_usd: float) -> None:
        self._counter = counter
        self._hit_cost_usd = hit_cost_usd

    def end(self, call: EmbedCall) -> None:
        answer = call.answer
        target = answer.target
        assert target is not None
        model = target.model
        embedded = call.embedded
        hits = [e for e in embedded if e is not None and e.cached]
        if answer.reported is not None:
            fresh = answer.reported.prompt_tokens
        else:
            counter = self._counter
            fresh = sum(
                counter.count_text(text, model.upstream, model.tokenizer).tokens
                for text, e in zip(call.request.inputs, embedded, strict=True)
                if e is not None and not e.cached
            )
        cached = sum(e.tokens for e in hits)
        answer.usage = Usage(fresh + cached, 0, cached)
        answer.cost_usd = cost_usd(Usage(fresh), _prices(call)) + self._hit_cost_usd * len(hits)
        answer.upstream_tokens = fresh

    def exit(self, call: EmbedCall, error: BaseException | None) -> None:
        answer = call.answer
        target = answer.target
        if target is not None and answer.usage is not None:
            record = call.record
            record.served_model = target.model.name
            record.provider = target.provider.name
            record.prompt_tokens = answer.usage.prompt_tokens
            record.cached_tokens = answer.usage.cached_prompt_tokens
            record.cost_usd = answer.cost_usd
            if answer.hit is None and target.model.schedule.scheduled:
                record.prices = _prices(call).record()
        record_attempts(call)


def _prices(call: Call[Any]) -> Prices:
    """The serving model's prices when the call went to its providers (a held call: when it was released)."""
    target = call.answer.target
    assert target is not None
    return target.model.schedule.at(call.answer.sent_at)


def record_attempts(call: Call[Any]) -> None:
    """The attempts the executor made, into the audit record."""
    execution = call.execution
    if execution is not None and execution.attempts:
        call.record.attempts = [
            {
                "model": a.target.model.name,
                "provider": a.target.provider.name,
                "outcome": a.outcome,
                "code": a.code,
                "reason": a.reason,
                "latency_ms": a.latency_ms,
                "retry": a.retry,
                "hedged": a.hedged,
            }
            for a in execution.attempts
        ]


class _CountTokens:
    """A stream's tokens are counted as they pass (nothing is buffered): the usage when a server reports none, and
    what a stream cut short by a cancel, a deadline or a failure is billed for. A unary answer, whole in one chunk,
    is counted only when its provider reported no usage."""

    __slots__ = ("_answer", "_counter", "_every_chunk")

    def __init__(self, call: ChatCall, counter: TokenCounter) -> None:
        self._answer = call.answer
        self._counter = counter
        self._every_chunk = call.streaming

    def chunk(self, delta: ChatDelta) -> None:
        if delta.text and self._answer.hit is None and (self._every_chunk or delta.usage is None):
            target = self._answer.target
            assert target is not None
            model = target.model
            self._answer.counted_tokens += self._counter.count_text(delta.text, model.upstream, model.tokenizer).tokens

    def finish(self) -> None:
        return None
