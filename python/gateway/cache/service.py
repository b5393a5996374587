"""The response cache as the pipeline sees it: decide what a call may do with the cache, look up, store, purge.

Exact lookups are one backend read keyed by the request's fingerprint. Semantic lookups embed the last user turn
(only for calls that may use the semantic cache, and only after an exact miss), search the semantic index within the
request's context, and serve a candidate only when the verify stage finds that both prompts ask for the same thing: a
similarity threshold alone serves wrong answers to near-misses ("5 km to miles" / "5 miles to km").

With Redis, every gateway publishes its semantic entries to a feed that the others follow into their index. The
processes sharing a state folder also share the index itself (SnapshotFolder): one writes a snapshot of it there, the
others map it, and each keeps in its own layer only what arrived since; a process starting maps the newest snapshot
and follows the feed from the position it covers.

A backend that fails or is slow never fails a call: the call goes on without the cache, the failure is logged and
counted, and the cache stays off for `retry_after_s` before it is tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway.cache.backends import BackendUnavailable, CacheBackend, PurgeFilter, SharedVector, VectorFeed
from gateway.cache.entries import CacheEntry, CacheInfo, EntryKey
from gateway.cache.keys import Fingerprint, embedding_ids, fingerprint, semantic_prompt
from gateway.cache.semantic_index import Candidate, SemanticIndex, Snapshot, SnapshotFolder
from gateway.chat import CacheControl, CacheMode, ChatRequest, ChatResult, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.embeddings import EmbedRequest
from gateway.observe.metrics import GatewayMetrics
from gateway.records.classification import Classification

if TYPE_CHECKING:
    # Types only: numpy is imported when a semantic entry first arrives (about 10 MB a process without the cache).
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 3600
"""For calls that turn caching on where the config does not (CacheControl.mode), without a ttl_seconds."""
CACHEABLE_FINISH = frozenset(("stop", "length", "tool_calls"))
"""Answers that ended normally; filtered, failed or cut-short answers are never stored."""
_READS = frozenset((CacheMode.DEFAULT, CacheMode.READ_WRITE, CacheMode.READ_ONLY))
_WRITES = frozenset((CacheMode.DEFAULT, CacheMode.READ_WRITE, CacheMode.WRITE_ONLY))


class Embedder(Protocol):
    dim: int

    async def embed(self, text: str) -> Vector: ...

    async def close(self) -> None: ...


Verify = Callable[[str, Sequence[Candidate]], tuple[Candidate | None, list[str]]]
"""(asked prompt, candidates best first) -> (the candidate to serve or None, the refusal reasons of the others)."""


@dataclass(slots=True)
class CachePlan:
    """What one call may do with the cache."""

    key: EntryKey
    fingerprint: Fingerprint
    team: str
    """The caller's team (the key's is "" for a shared cache): whose lookups these are in the statistics."""
    read_exact: bool
    read_semantic: bool
    write: bool
    semantic: bool
    """Whether an answer stored by this call joins the semantic index."""
    ttl_s: int
    vector: Vector | None = None
    """The prompt's embedding, computed once for the lookup and reused by the store."""
    leader: bool = False
    """The call that asks the provider while identical calls wait for its answer (see ResponseCache.release)."""


@dataclass(slots=True)
class EmbeddingPlan:
    """What one embedding call may do with the cache: one exact entry per input."""

    keys: list[EntryKey]
    team: str
    read: bool
    write: bool
    ttl_s: int


@dataclass(frozen=True, slots=True)
class _Settings:
    """What the config and the request decide for a call, whatever its kind."""

    mode: CacheMode
    policy: CachePolicyConfig | None
    owner: str
    namespace: str
    ttl_s: int


@dataclass(frozen=True, slots=True)
class CacheHit:
    entry: CacheEntry
    info: CacheInfo


@dataclass(slots=True)
class LookupCounts:
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    rejections: int = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    backend: str
    available: bool
    entries: int
    bytes: int
    max_bytes: int
    counts: LookupCounts
    semantic_entries: int


@dataclass(slots=True)
class _Health:
    down_until: float = 0.0
    down: bool = False
    counts: dict[str, LookupCounts] = field(default_factory=dict)


class ResponseCache:
    def __init__(
        self,
        config: CacheConfig,
        policies: dict[str, CachePolicyConfig],
        backend: CacheBackend,
        *,
        load_embedder: Callable[[], Awaitable[Embedder]] | None,
        verify: Verify,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
        feed: VectorFeed | None = None,
        snapshots: SnapshotFolder | None = None,
    ) -> None:
        """`snapshots`: where the processes of this machine share the semantic index (only with a `feed`: without
        one, each process's entries are its own)."""
        self._config = config
        self._max_classification = Classification.parse(config.max_classification)
        self._policies = policies
        self._backend = backend
        self._load_embedder = load_embedder
        self._embedder: Embedder | None = None
        self._embedder_lock = asyncio.Lock()
        self._embedder_failed = False
        self._verify = verify
        self._metrics = metrics
        self._clock = clock
        self._index: SemanticIndex | None = None
        self._feed = feed
        self._origin = secrets.token_hex(8)
        self._following: asyncio.Task[None] | None = None
        self._snapshots = snapshots if feed is not None else None
        self._snapshotting: asyncio.Task[None] | None = None
        self._in_flight: dict[str, asyncio.Future[None]] = {}
        """Exact ids some call is asking a provider for now, done when it is over."""
        self._health = _Health()
        if metrics is not None:
            metrics.set_cache_backend(backend.name, up=True)

    @property
    def hit_cost_usd(self) -> float:
        return self._config.hit_cost_usd

    @property
    def max_entry_chars(self) -> int:
        return self._config.max_entry_bytes

    def plan(self, request: ChatRequest, team: str, choice: str, *, classification: Classification) -> CachePlan | None:
        """None when the call does not touch the cache (the config and the request leave it off, or the call is
        classified above max_classification). `choice` is the model the router puts first for this call: entries
        are partitioned by it too, so a rules route's rule, a weighted route's sticky arm or a residency filter that
        picks another model never shares an entry."""
        if request.passthrough:
            return None  # the gateway cannot vouch for what parameters it does not model do to an answer
        control = request.cache
        settings = self._settings(request.model, control, team, classification)
        if settings is None:
            return None
        mode, policy, owner, namespace = settings.mode, settings.policy, settings.owner, settings.namespace
        semantic = policy.semantic if policy is not None else False
        if control is not None and control.allow_semantic is not None:
            semantic = control.allow_semantic
        exact = policy.exact if policy is not None and mode is CacheMode.DEFAULT else True
        found = fingerprint(request, (owner, namespace, f"{request.model}\x00{choice}"))
        semantic = (
            semantic
            and bool(found.prompt)
            and len(found.prompt) <= self._config.semantic_max_prompt_chars
            and self._load_embedder is not None
        )
        reads = mode in _READS
        return CachePlan(
            EntryKey(owner, namespace, request.model, found.exact),
            found,
            team,
            read_exact=reads and exact,
            read_semantic=reads and semantic,
            write=mode in _WRITES,
            semantic=semantic,
            ttl_s=settings.ttl_s,
        )

    async def prompt_vector(
        self, request: ChatRequest, team: str, *, classification: Classification, always: bool
    ) -> Vector | None:
        """The prompt's embedding, for a learned route's query-type cluster: computed before routing, and only for a
        call the semantic cache would embed anyway (its plan reads semantic entries) unless `always`. The call's
        semantic lookup and store reuse it (CacheAnswers puts it in the plan), so a call embeds once. None when the
        call has no plain user prompt, or the embedder is off or saturated."""
        if always:
            text = semantic_prompt(request)
            if not text or len(text) > self._config.semantic_max_prompt_chars:
                return None
        else:
            plan = self.plan(request, team, "", classification=classification)
            if plan is None or not plan.read_semantic:
                return None
            text = plan.fingerprint.prompt
        try:
            return await self._embed(text)
        except Exception:  # as in lookup: the call goes on, typed by its cheap features
            log.exception("embedding the prompt for its query type failed; the call goes on without it")
            self._count_error("lookup")
            return None

    def embedding_plan(
        self, request: EmbedRequest, team: str, choice: str, *, classification: Classification
    ) -> EmbeddingPlan | None:
        """As `plan`, for the inputs of an embedding call: exact entries only (a vector is the answer to exactly its
        text), partitioned as a chat call's are, and by the vector length asked for."""
        settings = self._settings(request.model, request.cache, team, classification)
        if settings is None:
            return None
        ids = embedding_ids(request, (settings.owner, settings.namespace, f"{request.model}\x00{choice}"))
        keys = [EntryKey(settings.owner, settings.namespace, request.model, entry_id) for entry_id in ids]
        return EmbeddingPlan(
            keys, team, read=settings.mode in _READS, write=settings.mode in _WRITES, ttl_s=settings.ttl_s
        )

    async def lookup_embeddings(self, plan: EmbeddingPlan) -> list[CacheEntry | None]:
        """Each input's entry, or None; every input a miss while the backend is down (never the call's failure)."""
        now = self._clock()
        misses: list[CacheEntry | None] = [None] * len(plan.keys)
        if not plan.read or not self._usable(now):
            return misses
        try:
            found = await asyncio.gather(*(self._backend.get(key, now) for key in plan.keys))
        except BackendUnavailable as err:
            self._failed(err, now)
            return misses
        except Exception:  # as in lookup
            log.exception("cache lookup failed; the call goes on without the cache")
            self._count_error("lookup")
            return misses
        self._recovered()
        counts = self._counts(plan.team)
        for entry in found:
            self._observe(counts, "exact", hit=entry is not None)
        return list(found)

    async def store_embeddings(
        self,
        plan: EmbeddingPlan,
        vectors: list[tuple[int, str, Usage, float]],
        *,
        served_model: str,
        provider: str,
        upstream_model: str,
    ) -> None:
        """Stores the vectors a provider produced for this call's missing inputs: (input index, packed vector as
        base64, that input's usage, what it cost)."""
        now = self._clock()
        if not plan.write or not vectors or not self._usable(now):
            return
        entries = [
            CacheEntry(
                key=plan.keys[index],
                context="",
                prompt="",
                text="",
                finish_reason="stop",
                upstream_model=upstream_model,
                served_model=served_model,
                provider=provider,
                usage=usage,
                cost_usd=cost,
                created_at=now,
                expires_at=now + plan.ttl_s,
                vector=packed,
            )
            for index, packed, usage, cost in vectors
        ]
        try:
            await asyncio.gather(*(self._backend.put(entry, now) for entry in entries))
        except BackendUnavailable as err:
            self._failed(err, now)
            return
        except Exception:  # as in store
            log.exception("cache store failed; the vectors were served but not stored")
            self._count_error("store")
            return
        self._recovered()

    def _settings(
        self, model: str, control: CacheControl | None, team: str, classification: Classification
    ) -> _Settings | None:
        mode = control.mode if control is not None else CacheMode.DEFAULT
        if mode is CacheMode.OFF or classification > self._max_classification:
            return None
        policy = self._policies.get(model)
        if mode is CacheMode.DEFAULT and (policy is None or not (policy.exact or policy.semantic)):
            return None
        asked_ttl = control.ttl_s if control is not None else 0
        # A caller may shorten the config's TTL, never lengthen it (on a shared route its entries serve every team).
        ttl_s = min(asked_ttl or policy.ttl_s, policy.ttl_s) if policy is not None else asked_ttl or DEFAULT_TTL_S
        namespace = control.namespace if control is not None else ""
        owner = "" if policy is not None and policy.shared else team
        return _Settings(mode, policy, owner, namespace, ttl_s)

    async def lookup(self, plan: CachePlan, *, wait: bool = False) -> CacheHit | None:
        """`wait`: on an exact miss while an identical call is already asking the provider, wait for its answer (up
        to coalesce_wait_s) instead of asking too, so a popular prompt whose entry expired costs one provider call,
        not one per caller. Streams do not wait: their first chunk would wait for the other call's last."""
        now = self._clock()
        counts = self._counts(plan.team)
        if not self._usable(now):
            return None
        try:
            if plan.read_exact:
                entry = await self._backend.get(plan.key, now)
                if entry is None and plan.write:
                    entry = await self._coalesce(plan, wait=wait)
                    now = self._clock()
                if entry is not None:
                    self._recovered()
                    self._observe(counts, "exact", hit=True)
                    return CacheHit(entry, _info(entry, "exact", 1.0, now))
            if plan.read_semantic:
                hit = await self._semantic_lookup(plan, counts, now)
                if hit is not None:
                    return hit
        except BackendUnavailable as err:
            self._failed(err, now)
            return None
        except Exception:  # the cache must never fail a call: a bug or a bad entry costs the lookup, not the call
            log.exception("cache lookup failed; the call goes on without the cache")
            self._count_error("lookup")
            return None
        self._recovered()
        self._observe(counts, "semantic" if plan.read_semantic else "exact", hit=False)
        return None

    async def store(
        self, plan: CachePlan, result: ChatResult, usage: Usage, *, served_model: str, provider: str, cost_usd: float
    ) -> bool:
        """Stores a provider's answer (before the output guardrails, which run again on every hit). False when the
        answer is not cacheable, too large, or the backend is down."""
        if not plan.write or result.finish_reason not in CACHEABLE_FINISH:
            return False
        if result.tool_calls and result.finish_reason == "length":
            return False  # a call cut off by max_tokens: its arguments are not whole JSON
        size = len(result.text) + sum(len(c.arguments_json) for c in result.tool_calls)
        if size > self._config.max_entry_bytes:
            return False
        now = self._clock()
        if not self._usable(now):
            return False
        entry = CacheEntry(
            key=plan.key,
            context=plan.fingerprint.context,
            prompt=plan.fingerprint.prompt,
            text=result.text,
            finish_reason=result.finish_reason,
            upstream_model=result.upstream_model,
            served_model=served_model,
            provider=provider,
            usage=usage,
            cost_usd=cost_usd,
            created_at=now,
            expires_at=now + plan.ttl_s,
            tool_calls=list(result.tool_calls),
        )
        try:
            await self._backend.put(entry, now)
            self._recovered()
            self.release(plan)
            if plan.semantic and not result.tool_calls:
                vector = plan.vector if plan.vector is not None else await self._embed(plan.fingerprint.prompt)
                if vector is not None:
                    index = self._semantic_index(len(vector))
                    index.add(entry.context, entry.key, entry.prompt, vector, entry.expires_at)
                    await self._publish(entry, vector)
        except BackendUnavailable as err:
            self._failed(err, now)
            return False
        except Exception:  # as in lookup: never the call's failure
            log.exception("cache store failed; the answer was served but not stored")
            self._count_error("store")
            return False
        return True

    def start(self) -> None:
        """With a shared backend, follows the semantic entries the other gateways store, into this one's index."""
        if self._feed is not None and self._following is None:
            self._following = asyncio.get_running_loop().create_task(self._follow(self._feed))

    async def purge(self, where: PurgeFilter) -> int:
        try:
            purged = await self._backend.purge(where)
        except BackendUnavailable as err:
            self._failed(err, self._clock())
            raise
        if self._index is not None:
            for key in purged:
                self._index.forget(key.id)
        return len(purged)

    async def stats(self, team: str | None) -> CacheStats:
        """BackendUnavailable when the backend cannot count its entries."""
        stored = await self._backend.stats(team)
        if team is None:
            counts = LookupCounts()
            for c in self._health.counts.values():
                counts.exact_hits += c.exact_hits
                counts.semantic_hits += c.semantic_hits
                counts.misses += c.misses
                counts.rejections += c.rejections
        else:
            counts = self._health.counts.get(team, LookupCounts())
        return CacheStats(
            backend=self._backend.name,
            available=not self._health.down,
            entries=stored.entries,
            bytes=stored.bytes,
            max_bytes=self._backend.max_bytes,
            counts=counts,
            # A scan (of every base payload once per snapshot): off the event loop.
            semantic_entries=await asyncio.to_thread(self._index.count, team) if self._index is not None else 0,
        )

    def release(self, plan: CachePlan) -> None:
        """The leader's call is over (its answer stored, or not): the calls waiting for it look again."""
        if plan.leader:
            plan.leader = False
            waiting = self._in_flight.pop(plan.key.id, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)

    async def _coalesce(self, plan: CachePlan, *, wait: bool) -> CacheEntry | None:
        if not wait or self._config.coalesce_wait_s <= 0:
            # A stream neither waits nor leads: its answer is stored only at its end, too late for a unary waiter.
            return None
        in_flight = self._in_flight.get(plan.key.id)
        if in_flight is None:
            self._in_flight[plan.key.id] = asyncio.get_running_loop().create_future()
            plan.leader = True
            return None
        # Shielded: a waiter that gives up (its deadline, a cancel) must not cancel what the others wait on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(in_flight), self._config.coalesce_wait_s)
        return await self._backend.get(plan.key, self._clock())

    def forget(self, key: EntryKey) -> None:
        """An entry the backend evicted leaves the semantic index too."""
        if self._index is not None:
            self._index.forget(key.id)

    async def close(self) -> None:
        for task in (self._following, self._snapshotting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._snapshots is not None:
            self._snapshots.close()
        if self._embedder is not None:
            await self._embedder.close()
        await self._backend.close()

    # --- semantic ---------------------------------------------------------------------------------------------------

    async def _semantic_lookup(self, plan: CachePlan, counts: LookupCounts, now: float) -> CacheHit | None:
        prompt = plan.fingerprint.prompt
        vector = plan.vector if plan.vector is not None else await self._embed(prompt)
        if vector is None:
            return None
        plan.vector = vector
        if self._index is None:
            return None
        config = self._config
        # In a thread: the core releases the GIL, and a context whose graph is still being built is scanned exactly.
        candidates = await asyncio.to_thread(
            self._index.search,
            plan.fingerprint.context,
            vector,
            config.semantic_candidates,
            config.similarity_threshold,
            now,
        )
        judged = False
        while candidates:
            chosen, reasons = self._verify(prompt, candidates)
            if reasons and not judged:  # a second round judges the same candidates again: counted once
                counts.rejections += len(reasons)
                if self._metrics is not None:
                    self._metrics.observe_cache_rejections(reasons)
            judged = True
            if chosen is None:
                return None
            entry = await self._backend.get(chosen.key, now)
            if entry is not None:
                self._recovered()
                self._observe(counts, "semantic", hit=True)
                return CacheHit(entry, _info(entry, "semantic", chosen.similarity, now))
            # Gone from the backend (expired, evicted, purged elsewhere): the next candidate may still serve.
            self._index.remove(plan.fingerprint.context, chosen.key.id)
            candidates = [c for c in candidates if c is not chosen]
        return None

    async def _embed(self, text: str) -> Vector | None:
        embedder = self._embedder or await self._start_embedder()
        if embedder is None:
            return None
        try:
            return await asyncio.wait_for(embedder.embed(text), self._config.embedding.timeout_s)
        except TimeoutError:
            # The embedder is saturated: this call goes on as a miss rather than queue behind the others.
            self._count_error("embed_timeout")
            return None

    async def _start_embedder(self) -> Embedder | None:
        """Loaded on the first call that may use the semantic cache (about 0.3 s and 200 MB): a gateway without
        semantic caching never pays for it. A model that cannot load leaves the exact cache working."""
        if self._load_embedder is None or self._embedder_failed:
            return None
        async with self._embedder_lock:
            if self._embedder is None and not self._embedder_failed:
                try:
                    self._embedder = await self._load_embedder()
                except Exception:  # any failure to load leaves the semantic cache off and the exact cache on
                    self._embedder_failed = True
                    log.exception("semantic cache off: the embedding model did not load")
        return self._embedder

    def _semantic_index(self, dim: int) -> SemanticIndex:
        if self._index is None:
            self._index = SemanticIndex(dim, self._config.max_semantic_entries)
        return self._index

    async def _publish(self, entry: CacheEntry, vector: Vector) -> None:
        """A feed that fails costs the other gateways this entry, never this one's exact cache."""
        if self._feed is None:
            return
        shared = SharedVector(entry.context, entry.key, entry.prompt, entry.expires_at, vector.tobytes(), self._origin)
        try:
            await self._feed.publish(shared)
        except BackendUnavailable as err:
            log.warning("semantic entry not shared with the other gateways: %s", err)
            self._count_error("feed")

    async def _follow(self, feed: VectorFeed) -> None:
        """From the oldest entry the feed keeps (or, with a snapshot, from the position it covers), then as they
        come; a backend that fails is retried after retry_after_s, from where the feed was left."""
        position = "0"
        if self._snapshots is not None:
            snapshot = await self._map_newest()
            if snapshot is not None and snapshot.label.isascii() and snapshot.label:
                position = snapshot.label.decode()
        while True:
            try:
                position, items = await feed.follow(position, block_s=1.0)
            except BackendUnavailable as err:
                log.warning("cannot follow the other gateways' semantic entries (%s); retrying", err)
                self._count_error("feed")
                await asyncio.sleep(self._config.retry_after_s)
                continue
            now = self._clock()
            for item in items:
                if item.origin == self._origin or item.expires_at <= now:
                    continue
                try:
                    import numpy as np

                    vector = np.frombuffer(item.vector, dtype=np.float32)
                    index = self._semantic_index(len(vector))
                    index.add(item.context, item.key, item.prompt, vector, item.expires_at)
                except ValueError as err:  # another version's or a damaged item: skipped, the feed goes on
                    log.warning("skipped an unreadable semantic feed item: %s", err)
            if self._snapshots is not None:
                await self._share(position)

    async def _map_newest(self) -> Snapshot | None:
        """Maps the state folder's snapshot if it is new, as the index's base. A snapshot that cannot be used is
        logged and skipped: the index goes on with what it has."""
        snapshots = self._snapshots
        if snapshots is None or not snapshots.changed():
            return None
        snapshot = await asyncio.to_thread(snapshots.open_newest)
        if snapshot is not None:
            await self._adopt(snapshot)
        return snapshot

    async def _adopt(self, snapshot: Snapshot) -> None:
        try:
            await asyncio.to_thread(self._semantic_index(snapshot.dim).adopt, snapshot)
        except ValueError as err:
            log.warning("semantic index snapshot not used: %s", err)

    async def _share(self, position: str) -> None:
        """After each read of the feed: map a newer snapshot; if this process holds the folder's lock and one is
        due, start writing the next (in the background: the feed goes on meanwhile)."""
        snapshots = self._snapshots
        if snapshots is None:
            return
        try:
            writing = self._snapshotting is not None and not self._snapshotting.done()
            if writing:
                return  # the writer maps what it wrote itself
            await self._map_newest()
            index = self._index
            if index is not None and snapshots.due(self._clock(), index) and snapshots.lead():
                self._snapshotting = asyncio.get_running_loop().create_task(self._write_snapshot(index, position))
        except Exception:  # sharing is an optimisation: a failure costs it, never the feed
            log.exception("semantic index snapshot check failed")

    async def _write_snapshot(self, index: SemanticIndex, position: str) -> None:
        """Everything up to `position` is in the index (the feed adds what it reads before this starts), so the
        snapshot covers the feed up to there: a process mapping it follows on from there."""
        snapshots = self._snapshots
        if snapshots is None:
            return
        index.writing = True
        try:
            snapshot = await asyncio.to_thread(snapshots.write, index, position.encode(), self._clock())
            if snapshot is not None:
                await self._adopt(snapshot)
        except Exception:  # a failed write leaves the last snapshot in place; the next one is tried at its time
            log.exception("semantic index snapshot not written")
        finally:
            index.writing = False

    # --- health -----------------------------------------------------------------------------------------------------

    def _usable(self, now: float) -> bool:
        health = self._health
        return not health.down or now >= health.down_until

    def _failed(self, err: BackendUnavailable, now: float) -> None:
        health = self._health
        if not health.down:
            log.warning(
                "cache backend %s unavailable (%s): calls are served without the cache; retrying in %.0f s",
                self._backend.name,
                err,
                self._config.retry_after_s,
            )
        health.down = True
        health.down_until = now + self._config.retry_after_s
        if self._metrics is not None:
            self._metrics.set_cache_backend(self._backend.name, up=False, failed=True)

    def _recovered(self) -> None:
        health = self._health
        if health.down:
            health.down = False
            log.warning("cache backend %s is back: calls use the cache again", self._backend.name)
            if self._metrics is not None:
                self._metrics.set_cache_backend(self._backend.name, up=True)

    def _count_error(self, stage: str) -> None:
        if self._metrics is not None:
            self._metrics.observe_cache_error(stage)

    def _counts(self, team: str) -> LookupCounts:
        counts = self._health.counts.get(team)
        if counts is None:
            counts = self._health.counts[team] = LookupCounts()
        return counts

    def _observe(self, counts: LookupCounts, kind: str, *, hit: bool) -> None:
        if hit:
            if kind == "exact":
                counts.exact_hits += 1
            else:
                counts.semantic_hits += 1
        else:
            counts.misses += 1
        if self._metrics is not None:
            self._metrics.observe_cache(kind=kind, hit=hit)


def _info(entry: CacheEntry, kind: str, similarity: float, now: float) -> CacheInfo:
    return CacheInfo(True, kind, similarity, entry.key.id, max(0, int(now - entry.created_at)))
