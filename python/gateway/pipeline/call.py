"""One call as the stages see it: what the transport knows, what admission decided, and what has come back so far.

A `Call` is filled on the way in, one stage at a time; each field names the stage that sets it, and no stage changes
a field another owns. The decisions it carries are frozen values (the key, the request's features, the route plan, the
estimate, the cache's verdict), so a later stage can read them but not change them. What comes back (`Answer`) is a
separate, small object: the only part that changes while an answer streams.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, TypeVar

from gateway.chat import ChatRequest, Usage
from gateway.embeddings import Embedding, EmbedRequest
from gateway.observe.refusal import AnswerEdges
from gateway.observe.spans import NOOP_CALL, CallSpan
from gateway.records.audit import SHADOW_KIND, AuditRecord
from gateway.records.classification import Classification

if TYPE_CHECKING:
    from gateway.cache.entries import CacheEntry, CacheInfo
    from gateway.cache.service import CachePlan, EmbeddingPlan
    from gateway.ledger.cost import Estimate
    from gateway.pipeline.stage import AnswerFilter
    from gateway.records.governance import KeyRecord
    from gateway.routing.catalog import Target
    from gateway.routing.executor import Execution
    from gateway.routing.features import RequestFeatures
    from gateway.routing.router import RoutePlan
    from gateway.state.admission import Ticket


class CallKind(StrEnum):
    """What kind of call it is, as the audit record and the metrics name it."""

    CHAT = "chat"
    STREAM = "stream"
    COMPARE = "compare"
    REPLAY = "replay"
    EMBED = "embed"
    SHADOW = SHADOW_KIND
    """A copy of a route's call sent to its shadow model after the caller had its answer."""


STREAMED = frozenset((CallKind.STREAM, CallKind.COMPARE, CallKind.REPLAY, CallKind.SHADOW))


class Api(StrEnum):
    """Which front door a call came through (audit records, metrics and spans label calls with it)."""

    GRPC = "grpc"
    HTTP = "http"


@dataclass(slots=True)
class CallInfo:
    """What the transport knows about a call."""

    metadata: Iterable[tuple[str, str | bytes]] | None
    deadline: float | None
    """time.monotonic() at which the caller gives up; None without a deadline."""
    peer: str = ""
    """The client's address as gRPC names it, e.g. 'ipv4:10.1.2.3:50122' (the HTTP front door writes it so too)."""
    api: Api = Api.GRPC
    signed_in: KeyRecord | None = None
    """A key the transport authenticated itself: the console's session, which holds a key's id, never its secret.
    None: the call authenticates with the key in its metadata."""

    def metadata_dict(self) -> dict[str, str]:
        return {name: value for name, value in self.metadata or () if isinstance(value, str)}


@dataclass(slots=True)
class Answer:
    """What has come back for a call: a stream's progress while it lasts, the whole answer's facts at its end."""

    target: Target | None = None
    """Who answers: the provider's target, or for a cache hit the configured target that first gave the answer."""
    hit: CacheEntry | None = None
    """The stored answer that serves this call (set by the cache stage)."""
    first_chunk_s: float | None = None
    """Seconds from the call's arrival to its first chunk (streams)."""
    reported: Usage | None = None
    """The usage the provider reported, if it did."""
    finish_reason: str = ""
    upstream_model: str = ""
    upstream_id: str = ""
    counted_tokens: int = 0
    """The answer's tokens as the gateway counted them while they passed: what a stream cut short is billed for."""
    edges: AnswerEdges | None = None
    """The answer's first and last characters as sent, kept only when something scores refusals: drift monitoring
    (observe), a learned route's profile (route)."""
    usage: Usage | None = None
    """The usage the call is billed for, once settled."""
    cost_usd: float = 0.0
    complete: bool = False
    """The whole answer came back (not cut short by an error, a cancel or a deadline)."""
    sent_at: float = 0.0
    """Epoch seconds when the call went to its providers (its arrival, or for a held call its release): the prices
    then in force bill it (pipeline)."""
    upstream_tokens: int = 0
    """Tokens providers processed for this call (none for the cache's answers): what the key's tokens per minute
    settle to (usage)."""


R = TypeVar("R", ChatRequest, EmbedRequest)


@dataclass(slots=True, eq=False)
class Call(Generic[R]):
    """One call from its arrival to its end: a chat call (`ChatCall`) or an embedding call (`EmbedCall`)."""

    info: CallInfo
    kind: CallKind
    method: str
    """The RPC's name, for the trace."""
    request: R
    """The request as it will go out: the caller's, then redacted (input guardrails), then on a cheaper model
    (budget downgrade)."""
    record: AuditRecord
    """The call's audit record, filled by the stages as they go."""
    span: CallSpan = NOOP_CALL
    """The call's trace span (observe)."""
    key: KeyRecord | None = None
    """The caller's key (authenticate)."""
    classification: Classification = Classification.PUBLIC
    """The data's classification: declared, raised by the key's labels (access) and by what the input guardrails
    found."""
    restore: dict[str, str] | None = None
    """Placeholder -> original of the input's redactions, put back in the answer when the policy says so."""
    features: RequestFeatures | None = None
    plan: RoutePlan | None = None
    """The targets to try and how (route)."""
    estimate: Estimate | None = None
    """Tokens and cost the call may take at most, for limits and budgets (route, when something needs it)."""
    ticket: Ticket | None = None
    """What the call holds against its key's limits and its budgets (limits)."""
    cache_plan: CachePlan | None = None
    embedding_plan: EmbeddingPlan | None = None
    """Embed calls: what the cache may do for each input (cache)."""
    cache: CacheInfo | None = None
    """Set once the cache was consulted: a hit, or MISS (cache)."""
    execution: Execution | None = None
    """The run through the plan's targets: attempts, retries, failover (set when the call is served)."""
    entered: int = 0
    """How many stages of the chain the call entered: those, and only those, exit."""
    admitted: bool = False
    """Every stage let the call in."""
    ended: bool = False
    """Every entered stage has exited."""
    filters: list[AnswerFilter] = field(default_factory=list)
    """Per-answer filters the stages registered, run on every chunk in chain order."""
    answer: Answer = field(default_factory=Answer)
    embedded: list[Embedding | None] = field(default_factory=list)
    """Embed calls: each input's vector once known, in the inputs' order (the cache's hits first, then the
    provider's)."""

    @property
    def streaming(self) -> bool:
        return self.kind in STREAMED

    @property
    def request_id(self) -> str:
        return self.record.request_id


ChatCall = Call[ChatRequest]
EmbedCall = Call[EmbedRequest]


def new_record(info: CallInfo, kind: CallKind, model: str) -> AuditRecord:
    now = time.time()
    return AuditRecord(request_id(now), now, peer=info.peer, kind=kind, model=model, api=info.api)


def request_id(now: float) -> str:
    """24 hex digits: the millisecond, then 48 random bits. Ids that grow with time append to the audit log's index
    instead of landing on a random page of it, which made each batch's commit rewrite a page per record.

    The bits come from `random`'s generator (seeded from the OS at start and again in a forked child), not from
    os.urandom: an id needs to be unique, not secret, and os.urandom's system call lets go of the GIL, which a gRPC
    thread then holds while the call waits (about 20 µs a call, measured with benches/pipeline_cpu.py)."""
    return f"{int(now * 1000):012x}{random.getrandbits(48):012x}"


def deadline_from(remaining: float | None) -> float | None:
    return None if remaining is None else time.monotonic() + remaining
