"""The response cache: a stored answer serves the call instead of a provider; a provider's answer is kept, as it
came and once the output guardrails let it through, for the calls to come."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable

from gateway.cache.entries import MISS, CacheEntry, CacheInfo
from gateway.cache.service import CachePlan, EmbeddingPlan, ResponseCache
from gateway.chat import ChatDelta, ChatResult, ToolCall, Usage
from gateway.embeddings import Embedding, pack_base64, unpack_base64
from gateway.ledger.cost import cost_usd
from gateway.pipeline.call import CallKind, ChatCall, EmbedCall
from gateway.pipeline.stage import BaseStage
from gateway.routing.catalog import ModelCatalog, Target
from gateway.tokens import TokenCounter


class CacheAnswers(BaseStage):
    """After the input guardrails and the budget downgrade: the fingerprint is of the request as it would go to a
    provider (redacted, on its final model), so no entry holds what the guardrails took out. Before the output
    guardrails, which run again on every hit with that caller's own placeholders restored."""

    name = "cache"

    def __init__(self, cache: ResponseCache, catalog: ModelCatalog) -> None:
        self._cache = cache
        self._catalog = catalog

    def enter(self, call: ChatCall) -> Awaitable[None] | None:
        if call.kind is CallKind.SHADOW:
            return None  # a shadow is there to see what its model answers now; its answer serves no one
        assert call.key is not None
        assert call.plan is not None
        candidates = call.plan.candidates
        choice = candidates[0].model.name if candidates else ""
        plan = self._cache.plan(call.request, call.key.team, choice, classification=call.classification)
        if plan is None:
            return None
        call.cache_plan = plan
        call.cache = MISS
        if call.features is not None:
            plan.vector = call.features.prompt_vector  # embedded before routing, for a learned route's cluster
        if plan.read_exact or plan.read_semantic:
            return self._lookup(call, plan)
        self._capture(call, plan)
        return None

    async def _lookup(self, call: ChatCall, plan: CachePlan) -> None:
        assert call.plan is not None
        hit = await self._cache.lookup(plan, wait=not call.streaming)
        if hit is not None:
            entry = hit.entry
            target = self._catalog.deployment(entry.served_model, entry.provider)
            # Served only by a model this call could have been routed to now (its route, rules and residency), and
            # only while the config still has it: nothing else could vouch for the entry.
            if target is not None and target.model.name in {c.model.name for c in call.plan.candidates}:
                call.answer.hit = entry
                call.answer.target = target
                call.cache = hit.info
                call.span.set_cache(hit=True, kind=hit.info.kind)
                call.record.cache = hit.info.audit()
                call.record.cache_saved_usd = max(0.0, entry.cost_usd - self._cache.hit_cost_usd)
                return
        call.span.set_cache(hit=False, kind="semantic" if plan.read_semantic else "exact")
        self._capture(call, plan)

    def _capture(self, call: ChatCall, plan: CachePlan) -> None:
        if plan.write:
            call.filters.append(_ProviderAnswer(self._cache.max_entry_chars))

    def end(self, call: ChatCall) -> Awaitable[None] | None:
        plan = call.cache_plan
        if plan is None or not plan.write or call.answer.hit is not None:
            return None
        captured = next((f for f in call.filters if isinstance(f, _ProviderAnswer)), None)
        if captured is None or not captured.whole:
            return None
        return self._store(call, plan, captured)

    async def _store(self, call: ChatCall, plan: CachePlan, captured: _ProviderAnswer) -> None:
        answer = call.answer
        assert answer.target is not None
        assert answer.usage is not None
        result = ChatResult(answer.upstream_id, answer.upstream_model, "", answer.finish_reason, answer.usage)
        await self._cache.store(
            plan,
            captured.result(result),
            answer.usage,
            served_model=answer.target.model.name,
            provider=answer.target.provider.name,
            cost_usd=answer.cost_usd,
        )

    def exit(self, call: ChatCall, error: BaseException | None) -> None:
        if call.cache_plan is not None:
            self._cache.release(call.cache_plan)


class CacheEmbeddings(BaseStage):
    """Per input, exact entries only: the inputs seen before (same team, namespace, model or route, vector length)
    get their stored vectors and only the others go to a provider, whose vectors are stored at the end. After the
    input guardrails, so entries are keyed by (and hold the vectors of) the redacted texts."""

    name = "cache"

    def __init__(self, cache: ResponseCache, catalog: ModelCatalog, counter: TokenCounter) -> None:
        self._cache = cache
        self._catalog = catalog
        self._counter = counter

    def enter(self, call: EmbedCall) -> Awaitable[None] | None:
        assert call.key is not None
        assert call.plan is not None
        call.embedded = [None] * len(call.request.inputs)
        candidates = call.plan.candidates
        choice = candidates[0].model.name if candidates else ""
        plan = self._cache.embedding_plan(call.request, call.key.team, choice, classification=call.classification)
        if plan is None:
            return None
        call.embedding_plan = plan
        call.cache = MISS
        return self._lookup(call, plan) if plan.read else None

    async def _lookup(self, call: EmbedCall, plan: EmbeddingPlan) -> None:
        assert call.plan is not None
        allowed = {c.model.name for c in call.plan.candidates}
        hit_cost = self._cache.hit_cost_usd
        first: tuple[Target, CacheEntry] | None = None
        entries = await self._cache.lookup_embeddings(plan)
        for index, entry in enumerate(entries):
            if entry is None or not entry.vector:
                continue
            # As for chat: served only by a model this call could be routed to now, while the config still has it.
            target = self._catalog.deployment(entry.served_model, entry.provider)
            if target is None or target.model.name not in allowed:
                continue
            call.embedded[index] = Embedding(unpack_base64(entry.vector), cached=True, tokens=entry.usage.prompt_tokens)
            call.record.cache_saved_usd += max(0.0, entry.cost_usd - hit_cost)
            first = first or (target, entry)
        whole = first is not None and all(e is not None for e in call.embedded)
        call.span.set_cache(hit=whole, kind="exact")
        if whole:
            assert first is not None
            target, entry = first
            call.answer.target = target
            call.answer.upstream_model = entry.upstream_model
            call.cache = CacheInfo(True, "exact", 1.0, entry.key.id, max(0, int(call.record.at - entry.created_at)))
            call.record.cache = call.cache.audit()

    def end(self, call: EmbedCall) -> Awaitable[None] | None:
        plan = call.embedding_plan
        target = call.answer.target
        if plan is None or not plan.write or target is None:
            return None
        model = target.model
        fresh: list[tuple[int, str, Usage, float]] = []
        for index, (text, embedded) in enumerate(zip(call.request.inputs, call.embedded, strict=True)):
            if embedded is None or embedded.cached:
                continue
            usage = Usage(self._counter.count_text(text, model.upstream, model.tokenizer).tokens)
            prices = model.schedule.at(call.answer.sent_at)
            fresh.append((index, pack_base64(embedded.vector), usage, cost_usd(usage, prices)))
        if not fresh:
            return None
        return self._cache.store_embeddings(
            plan,
            fresh,
            served_model=model.name,
            provider=target.provider.name,
            upstream_model=call.answer.upstream_model,
        )


class _ProviderAnswer:
    """The provider's answer as it came (before the output guardrails), put back together for the cache: its text,
    and its tool calls from their fragments (an id and a name first, then the arguments in pieces, each call by its
    index). Given up once larger than an entry may be, or when a fragment names another call than its index already
    holds (a server that leaves out the index): such an answer is not stored, never merged."""

    __slots__ = ("_calls", "_chars", "_limit", "_text", "whole")

    def __init__(self, limit_chars: int) -> None:
        self._limit = limit_chars
        self._chars = 0
        self._text: list[str] = []
        self._calls: dict[int, tuple[str, str, list[str]]] = {}
        self.whole = True

    def chunk(self, delta: ChatDelta) -> None:
        if not self.whole:
            return
        if delta.text:
            self._text.append(delta.text)
            self._chars += len(delta.text)
        for part in delta.tool_calls:
            call_id, name, arguments = self._calls.get(part.index) or ("", "", [])
            if (part.id and call_id and part.id != call_id) or (part.name and name and part.name != name):
                self._give_up()
                return
            arguments.append(part.arguments_delta)
            self._calls[part.index] = (call_id or part.id, name or part.name, arguments)
            self._chars += len(part.arguments_delta)
        if self._chars > self._limit:
            self._give_up()

    def finish(self) -> None:
        return None

    def _give_up(self) -> None:
        self.whole = False
        self._text = []
        self._calls = {}

    def result(self, ended: ChatResult) -> ChatResult:
        calls = [ToolCall(i, n, "".join(a)) for _, (i, n, a) in sorted(self._calls.items())]
        return dataclasses.replace(ended, text="".join(self._text), tool_calls=calls)
