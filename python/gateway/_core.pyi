"""Typed stubs of gateway._core, the Rust hot path (checked against the module by `make lint` with stubtest)."""

from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from typing import Any, ClassVar, Literal, Self, final

from typing_extensions import Buffer, disjoint_base

__version__: str

class CoreError(Exception):
    """Base class of errors raised by gateway._core."""

class InvalidArgumentError(CoreError, ValueError):
    """An argument the caller can fix (unknown name, bad dimension, non-positive rate...); also a ValueError."""

class StorageError(CoreError, OSError):
    """A file could not be read or written (VectorIndex.save/load), or a vector graph operation failed; also an
    OSError."""

# --- token counting (rust/src/tokens.rs) ------------------------------------------------------------------------

EncodingName = Literal["cl100k_base", "o200k_base"]

def encode(text: str, encoding_name: str, allowed_special: Literal["all"] | Iterable[str] | None = None) -> list[int]:
    """Token ids of `text`, identical to tiktoken's; special-token text is plain text unless allowed."""

def count_tokens(text: str, encoding_name: str) -> int:
    """The number of tokens of `text`, without building the ids."""

def decode(ids: Sequence[int], encoding_name: str) -> str:
    """The text of `ids`; invalid UTF-8 (a token cut mid-character) becomes U+FFFD. ValueError for unknown ids."""

def count_tokens_batch(texts: Sequence[str], encoding_name: str) -> list[int]:
    """Counts of many texts, spread over threads when the batch is large."""

def encode_batch(
    texts: Sequence[str], encoding_name: str, allowed_special: Literal["all"] | Iterable[str] | None = None
) -> list[list[int]]:
    """Ids of many texts, spread over threads when the batch is large."""

def count_chat_tokens(
    messages: Sequence[tuple[str, str, str]],
    encoding_name: str,
    per_message: int = 3,
    per_name: int = 1,
    reply: int = 3,
) -> int:
    """Tokens a chat costs as a prompt: (role, name, content) rows plus the model family's framing."""

def special_tokens(encoding_name: str) -> dict[str, int]:
    """The encoding's special-token texts and their ids, as tiktoken's `special_tokens_set`/`encode_single_token`."""

def load_encoding(encoding_name: str) -> None:
    """Loads the embedded vocabulary now (o200k_base ~35 ms, cl100k_base ~12 ms, without the GIL) instead of in the
    first call that needs it; either way its serialized tables then leave the resident set."""

ENCODINGS: list[str]
"""The valid encoding names."""

# --- rate limits (rust/src/ratelimit.rs) -------------------------------------------------------------------------
# A single take answers a float: 0.0 = admitted (units taken), > 0 = seconds until it would be, inf = never (more than
# the burst or the concurrency max). So `if wait := limiter.take(...)` reads "if denied".

@final
class Limit:
    """How a bucket is read: a GCRA rate with a burst, or a maximum in flight. Build once, reuse on every call."""

    def __new__(cls, rate_per_s: float, burst: float) -> Self:
        """`rate_per_s` units per second, at most `burst` units at once. ValueError unless rate > 0 and burst >= 1."""

    @staticmethod
    def per_minute(n: float, burst: float | None = None) -> Limit:
        """`n` units per minute (rpm, tpm); the burst defaults to `n`."""

    @staticmethod
    def concurrent(max_concurrent: int, retry_after: float = 0.05) -> Limit:
        """At most `max_concurrent` units held until given back; a denial answers `retry_after` seconds."""

    @property
    def kind(self) -> Literal["rate", "concurrency"]: ...
    @property
    def rate_per_s(self) -> float | None: ...
    @property
    def burst(self) -> float:
        """The burst of a rate limit, or the maximum in flight of a concurrency limit."""

@final
class RateLimiter:
    """Rate (GCRA) and concurrency limits keyed by any string; thread-safe; memory bounded by `max_keys`.

    A key's bucket holds a rate's state and a count in flight; the Limit passed with each call says how to read it, so
    a changed limit applies from the next call. Buckets whose state equals a fresh one are dropped after `idle_ttl`
    seconds (evict_idle) or when a shard fills, which changes no answer; only past `max_keys` live keys are the least
    recently used ones forgotten.
    """

    def __new__(cls, max_keys: int = 100_000, idle_ttl: float = 300.0) -> Self: ...
    @staticmethod
    def with_test_clock(max_keys: int = 100_000, idle_ttl: float = 300.0) -> RateLimiter:
        """A limiter whose clock moves only by advance(), for deterministic tests."""

    def take(self, key: str, limit: Limit, n: float = 1.0) -> float:
        """Takes `n` units of `limit` from `key`: 0.0 when admitted, else the seconds to wait (inf: never)."""

    def take_all(self, checks: Iterable[tuple[str, Limit, float]]) -> tuple[float, int] | None:
        """(key, Limit, n) checks, rate and concurrency mixed, all or none: None when all are admitted (all taken),
        else (seconds until all would be, index of the first check that refused) and nothing taken."""

    def correct(self, key: str, limit: Limit, delta: float) -> None:
        """Corrects a take once the real amount is known: `delta > 0` takes more (unconditionally), `delta < 0` gives
        back, never past a full bucket (under a concurrency limit: releases)."""

    def available(self, key: str, limit: Limit) -> float:
        """Units `limit` would admit on `key` now, without taking any."""

    def evict_idle(self) -> int:
        """Drops idle buckets that equal fresh ones; returns how many. Call it periodically."""

    def advance(self, seconds: float) -> None:
        """Moves a test clock forward; ValueError on a limiter with the real clock."""

    def __len__(self) -> int: ...

# --- multi-pattern search (rust/src/patterns.rs) -------------------------------------------------------------------

@final
class PatternSet:
    """Many regexes (Rust `regex` syntax) over one text, each reporting its own leftmost-first, non-overlapping
    matches; a literal prefilter and a lazy DFA per pattern. ValueError names the first pattern that fails."""

    def __new__(cls, patterns: Sequence[str]) -> Self: ...
    def find_all(self, text: str, limit: int = 64) -> list[tuple[int, int, int]]:
        """(pattern index, start, end) in characters, at most `limit` per pattern, ordered by pattern then start."""

    def which(self, text: str) -> list[int]:
        """Indices of the patterns that match anywhere in `text`."""

    @property
    def patterns(self) -> list[str]: ...
    def __len__(self) -> int: ...

# --- drift monitor's open window (rust/src/drift.rs, rust/src/py/drift.rs) ------------------------------------------

@final
class DriftWindow:
    """One (model, provider)'s open window of gateway.observe.drift: each finished call's values added in one call.
    Edges must be ascending (else InvalidArgumentError)."""

    def __new__(
        cls, seconds_edges: Sequence[float], tokens_edges: Sequence[float], max_categories: int, max_route_rules: int
    ) -> Self: ...
    def observe(
        self,
        status: str,
        latency_s: float,
        ttfc_s: float | None = None,
        answer_tokens: float | None = None,
        finish_reason: str = "",
        refused: bool | None = None,
        prompt_tokens: float | None = None,
        route_rule: str = "",
    ) -> None:
        """One finished call: status and prompt length always (the latter as `prompt_tokens:<route_rule>`);
        latency, time to first chunk, answer length, finish reason and refusal only when `status` is `OK`. None (or
        an empty finish reason): not known, not counted."""

    def take(self) -> dict[str, dict[str, Any]]:
        """The window's metrics in gateway.observe.drift.encode_window's shape; the window starts again empty (the
        route rules seen stay)."""

    def peek(self) -> dict[str, dict[str, Any]]:
        """The window's metrics so far, in the same shape, the window unchanged."""

    def __len__(self) -> int: ...

# --- refusal scorer's view of an answer (rust/src/refusal.rs, rust/src/py/refusal.rs) --------------------------------

@disjoint_base
class AnswerEdges:
    """What gateway.observe.refusal reads of an answer, kept as it streams: its first 2 x HEAD_CHARS and last
    2 x TAIL_CHARS characters, its length and spaces, and where a refusal's trigger words are. Subclassable (the
    Python scorer adds its regexes)."""

    HEAD_CHARS: ClassVar[int]
    TAIL_CHARS: ClassVar[int]
    SHORT_WORDS: ClassVar[int]
    IN_HEAD: ClassVar[int]
    IN_TAIL: ClassVar[int]
    def __new__(cls) -> Self: ...
    def feed(self, chunk: str) -> None:
        """The next piece of the answer's text."""

    @property
    def length(self) -> int:
        """Characters fed so far."""

    @property
    def spaces(self) -> int: ...
    @property
    def head(self) -> str: ...
    @property
    def tail(self) -> str: ...
    def triggered(self) -> int:
        """IN_HEAD when the first HEAD_CHARS characters, lower-cased, hold a trigger word; IN_TAIL when the last
        TAIL_CHARS do and the answer is longer than HEAD_CHARS but has fewer than SHORT_WORDS spaces; 0: not a
        refusal."""

# --- linear text classifier (rust/src/textmodel.rs, rust/src/py/textmodel.rs) -----------------------------------

def hashed_ngrams(text: str, dim_bits: int, window: int, stride: int) -> list[tuple[list[int], list[float]]]:
    """The hashed word, word-pair and character 3-5-gram features of each window of `window` words taken every
    `stride` words: (sorted bucket indices below 2**dim_bits, unit-length values) per window. The training script
    builds its matrix from these, the same code LinearTextModel scores with. ValueError for bad sizes."""

@final
class LinearTextModel:
    """A logistic regression over hashed_ngrams, read from its file (int8 weights, bias, calibration); ValueError
    for a file that is not one."""

    def __new__(cls, data: bytes) -> Self: ...
    def score(self, text: str) -> float:
        """The calibrated score in [0, 1] of the text's margin; 0.0 for a text without words."""

    def margin(self, text: str) -> float | None:
        """The text's raw margin: its worst window's, less the model's length penalty times the log of the number of
        windows, less its discount times the median window's when that is positive and the text has more than two
        windows; None for a text without words."""

    def margins(self, text: str) -> list[float]:
        """The raw margin of each window, in order."""

    @property
    def dim_bits(self) -> int: ...
    @property
    def window(self) -> int: ...
    @property
    def stride(self) -> int: ...

# --- PII scanning (rust/src/pii/, rust/src/py/pii.rs) --------------------------------------------------------------

PiiKind = Literal[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "SECRET",
]
PII_KINDS: tuple[PiiKind, ...]
"""The entity types the scanner reports, in the order of PiiKind (tests/core/test_stub.py keeps the two equal)."""
RedactionMode = Literal["mask", "placeholder", "hash"]
PII_STREAM_HOLD_CHARS: int
"""Characters a stream redactor holds back (more only while a word, key or private-key block is still arriving)."""

@final
class PiiMatch:
    """One detected item: character offsets into the scanned str, the entity name and a score in [0, 1]."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def kind(self) -> PiiKind: ...
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> str: ...

@final
class PiiScanner:
    """Finds PII and secrets. `kinds` restricts what is reported; matches under `min_score` are dropped."""

    def __new__(cls, min_score: float = 0.5, kinds: Sequence[str] | None = None) -> Self: ...
    @property
    def min_score(self) -> float: ...
    @property
    def kinds(self) -> list[PiiKind]: ...
    def scan(self, text: str) -> list[PiiMatch]: ...
    def scan_batch(self, texts: Sequence[str]) -> list[list[PiiMatch]]: ...
    def redact(
        self,
        text: str,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Return the redacted text and placeholder -> original. `mode` is one mode (default "placeholder") for
        `kinds` (all when None), or a dict kind -> mode. Pass an earlier `mapping` to continue its numbering."""

    @staticmethod
    def restore(text: str, mapping: Mapping[str, str]) -> str: ...
    def stream(
        self,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        restore: bool = False,
    ) -> PiiStreamRedactor: ...

@final
class PiiStreamRedactor:
    """Redacts streamed text: `push` returns what is safe to release (holding back at most a small window),
    `finish` flushes the rest. `mode`/`kinds` as for `PiiScanner.redact`; `mapping` continues earlier placeholders;
    `restore=True` puts the originals of `mapping`'s placeholders back in the released text, after the answer's own
    items are redacted (the answer side of a redacted prompt)."""

    def __new__(
        cls,
        scanner: PiiScanner | None = None,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        restore: bool = False,
    ) -> Self: ...
    def push(self, chunk: str) -> str: ...
    def feed(self, chunk: str) -> str:
        """Same as `push`."""

    def finish(self) -> str: ...
    @property
    def mapping(self) -> dict[str, str]: ...
    @property
    def found(self) -> dict[str, int]: ...
    @property
    def held(self) -> int: ...

# --- vector similarity (rust/src/vectors.rs) ---------------------------------------------------------------------

VectorLike = Buffer | Sequence[float]
"""A float32 buffer (numpy.float32 array: one copy) or any sequence of floats."""

@final
class VectorIndex:
    """Per-namespace cosine index of embeddings; no search ever crosses namespaces.

    Exact scan while a namespace is small; once it holds `hnsw_min_vectors` vectors, a usearch HNSW graph filled by a
    background thread (entries not yet in the graph are kept contiguous and scanned exactly, so every entry is
    searchable at once). Vectors are L2-normalised on the way in. A vector is a float32 buffer (numpy.float32 array:
    one copy) or any sequence of floats. ValueError for a wrong dimension, NaN/inf values or the zero vector.
    """

    def __new__(
        cls,
        dim: int,
        hnsw_min_vectors: int = 4096,
        expansion_search: int = 64,
        *,
        connectivity: int = 16,
        expansion_add: int = 128,
        quantization: Literal["f32", "bf16", "f16", "i8"] = "bf16",
    ) -> Self:
        """hnsw_min_vectors: the namespace size from which a graph is built; expansion_search: the graph search's
        breadth (recall against latency); quantization: how graphs store vectors (scores are always exact f32)."""

    @property
    def dim(self) -> int: ...
    @property
    def hnsw_min_vectors(self) -> int: ...
    @property
    def quantization(self) -> Literal["f32", "bf16", "f16", "i8"]: ...
    def insert(self, namespace: str, id: int, vector: VectorLike, payload: bytes = b"") -> None:
        """Inserts or replaces `id` (an unsigned 64-bit int) in `namespace`, with `payload` stored beside it."""

    def payload(self, namespace: str, id: int) -> bytes | None:
        """The payload stored with `id`; None when `id` is not in `namespace`."""

    def remove(self, namespace: str, id: int) -> bool:
        """False when `id` was not in `namespace`."""

    def search(
        self, namespace: str, vector: VectorLike, k: int = 1, min_score: float = -1.0
    ) -> list[tuple[int, float]]:
        """Up to `k` (id, cosine) pairs with cosine >= `min_score`, best first; [] for an unknown namespace."""

    def count(self, namespace: str | None = None) -> int:
        """Entries in `namespace`, or in all namespaces when None."""

    def pending(self, namespace: str) -> int:
        """Entries of `namespace` not yet in its graph (searched exactly meanwhile)."""

    def namespaces(self) -> list[str]: ...
    def flush(self, threads: int | None = None) -> None:
        """Moves every pending entry into the graphs now instead of waiting for the background indexer (default
        threads: all cores); on return nothing is pending, and no background indexer runs."""

    def save(self, path: str | PathLike[str], label: bytes = b"") -> None:
        """Writes rows, payloads and graphs to `path` as a snapshot (VectorSnapshot maps it, load copies it),
        atomically (temporary file, then rename), with `label` stored for its readers. OSError on I/O failure."""

    @staticmethod
    def load(path: str | PathLike[str]) -> VectorIndex:
        """Reads a snapshot into a new, mutable index (a private copy). OSError when unreadable, ValueError when not
        a snapshot."""

    def save_merged(
        self,
        path: str | PathLike[str],
        base: VectorSnapshot | None = None,
        removed: Sequence[tuple[str, int]] = (),
        *,
        max_entries: int | None = None,
        max_graph_adds: int | None = None,
        threads: int = 1,
        label: bytes = b"",
    ) -> tuple[int, int, int]:
        """Writes the next snapshot to `path`: `base`'s entries but the `removed` (namespace, id) pairs and those
        this index holds (its copy is the newer), then this index's entries. Graphs are copied from `base` (never
        rebuilt) and grown by at most `max_graph_adds` rows (all when None) on `threads` threads; the newest
        `max_entries` are kept. Returns (entries, entries pending as `pending` counts them, rows added to graphs).
        ValueError when `base` was written with other settings (dim, graph type...)."""

    def remove_shared(self, snapshot: VectorSnapshot) -> list[tuple[str, int]]:
        """Removes the entries `snapshot` holds identically (same vector, same payload): a process that maps a
        snapshot drops its own copies of them. Returns them as (namespace, id)."""

    def __len__(self) -> int: ...

@final
class VectorSnapshot:
    """A read-only index over a snapshot file (VectorIndex.save, save_merged), memory-mapped: processes that open one
    file share its pages (rows and graph), and searches run on its graph at once, nothing rebuilt. The file may be
    replaced while open: this object keeps reading the one it opened."""

    def __new__(cls, path: str | PathLike[str]) -> Self:
        """Maps the file with every page read in (~0.1 s for 300 MB in the page cache; without the GIL), so the first
        search runs at steady latency. OSError when unreadable, ValueError when not a snapshot (or a damaged one)."""

    @property
    def dim(self) -> int: ...
    @property
    def label(self) -> bytes:
        """The bytes its writer stored with it."""

    def search(
        self, namespace: str, vector: VectorLike, k: int = 1, min_score: float = -1.0
    ) -> list[tuple[int, float]]:
        """Up to `k` (id, cosine) pairs with cosine >= `min_score`, best first; [] for an unknown namespace."""

    def payload(self, namespace: str, id: int) -> bytes | None: ...
    def payloads(self, namespace: str) -> list[bytes]:
        """Every payload of `namespace` (a scan: for statistics)."""

    def contains(self, namespace: str, id: int) -> bool: ...
    def count(self, namespace: str | None = None) -> int:
        """Entries in `namespace`, or in all namespaces when None."""

    def pending(self, namespace: str | None = None) -> int:
        """Entries of `namespace` (of all namespaces when None) not in its graph (searched exactly, in one
        contiguous scan)."""

    def namespaces(self) -> list[str]: ...
    def __len__(self) -> int: ...

# --- OTLP trace export (rust/src/otlp.rs, rust/src/py/otlp.rs) ----------------------------------------------------

OtlpScalar = str | bool | int | float
OtlpAttributeValue = OtlpScalar | list[str] | list[bool] | list[int] | list[float] | tuple[OtlpScalar, ...]
"""An attribute value: a scalar, or a list or tuple of scalars (an OTLP array). Ints are 64-bit signed."""
OtlpAttributes = Iterable[tuple[str, OtlpAttributeValue]]
"""(key, value) tuples: a list of pairs or `dict.items()`."""
OtlpEvent = tuple[str, int, OtlpAttributes]
"""(name, time_ns, attributes)."""
OtlpSpan = tuple[int, int, int, str, int, int, int, OtlpAttributes, Iterable[OtlpEvent], int, str, str, int]
"""(trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, attributes, events, status_code, status_message,
trace_state, flags): ids as ints (128-bit trace, 64-bit span; parent 0 for a root span), kind an OTLP SpanKind (1
internal, 2 server, 3 client, 4 producer, 5 consumer), times in ns since the epoch, status_code 0 unset, 1 ok, 2 error,
trace_state in W3C `tracestate` form (or ""), flags the OTLP span flags (W3C trace flags in the low 8 bits)."""

def encode_span_chunk(spans: Iterable[OtlpSpan]) -> bytes:
    """`spans` as OTLP wire bytes, to be sent later in a batch by `encode_export` (b"" when there are none). Ids are
    written big-endian (16 and 8 bytes), the parent omitted when 0, and a status always present. ValueError names the
    attribute of a value that is not a str, bool, int, float or a list or tuple of those, or an int beyond 64 bits;
    ValueError or TypeError names the span and field of a bad span."""

def encode_export(
    resource_attributes: OtlpAttributes, scope_name: str, scope_version: str, chunks: Iterable[bytes]
) -> bytes:
    """The bytes of an OTLP `ExportTraceServiceRequest` holding the spans of `chunks` (each from `encode_span_chunk`;
    other bytes make a request a collector cannot read), in order, under one resource and one instrumentation scope;
    b"" (the empty request) when they hold no spans. TypeError when a chunk is not bytes."""

# --- query-type features (rust/src/query.rs) -----------------------------------------------------------------------

def prompt_language(text: str) -> str:
    """zh, ja, ko, ru, ar by script; else en, fr, de, es by common words; else "und". `text` lower-cased."""

def prompt_has_code(text: str) -> bool:
    """A code fence, or two lines among the first 2,000 characters that look like statements. `text` lower-cased."""

def key_digest(key: str) -> str:
    """The SHA-256 of the key's UTF-8 bytes as lower-case hex (what `hashlib.sha256(key.encode()).hexdigest()`
    gives): how the key ring looks an API key up, without the key itself being stored."""
