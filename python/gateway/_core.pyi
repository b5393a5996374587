"""Typed stubs of gateway._core, the Rust hot path (checked against the module by `make lint` with stubtest)."""

from collections.abc import Iterable, Sequence
from typing import Literal, Self, final

import numpy as np
import numpy.typing as npt

__version__: str

class CoreError(Exception):
    """Base class of errors raised by gateway._core."""

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
    """Deserializes the embedded vocabulary now (~50 ms) instead of in the first call that needs it."""

ENCODINGS: list[str]
"""The valid encoding names."""

# --- rate limits (rust/src/ratelimit.rs) -------------------------------------------------------------------------

@final
class RateLimiter:
    """Rate (GCRA) and concurrency limits keyed by any string; thread-safe; idle keys evicted without loosening."""

    def __new__(cls, max_keys: int = 100_000) -> Self: ...
    @staticmethod
    def with_test_clock(max_keys: int = 100_000) -> RateLimiter:
        """A limiter whose clock moves only by advance(), for deterministic tests."""

    def check(self, key: str, rate_per_s: float, burst: float, cost: float = 1.0) -> float:
        """0.0 when `cost` units are admitted (and taken), else the seconds to wait. ValueError for a bad limit."""

    def check_many(self, limits: Sequence[tuple[str, float, float, float]]) -> float:
        """(key, rate_per_s, burst, cost) limits, all or none: 0.0 when all admitted, else seconds until all would."""

    def adjust(self, key: str, rate_per_s: float, burst: float, delta: float) -> None:
        """Takes `delta` more units (or gives back, when negative) once the real cost is known."""

    def acquire(self, key: str, max_concurrent: int) -> bool:
        """Takes one of `max_concurrent` slots; False when all are held. Pair every True with release()."""

    def release(self, key: str) -> None: ...
    def advance(self, seconds: float) -> None:
        """Moves a test clock forward; ValueError on a limiter with the real clock."""

    def __len__(self) -> int: ...

# --- PII scanning (rust/src/pii.rs) ------------------------------------------------------------------------------

PiiKind = Literal[
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "DATE_OF_BIRTH", "SECRET"
]
RedactionMode = Literal["mask", "placeholder", "hash"]
PII_STREAM_HOLD_CHARS: int
"""Characters a stream redactor holds back at most (longer while a word or a private-key block is still open)."""

@final
class PiiMatch:
    """One detected item; `start` and `end` are character offsets into the scanned str."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> str: ...

@final
class PiiScanner:
    """Finds PII and secrets with one regex-set pass plus validators (Luhn, SSN rules, IBAN mod-97, IP ranges)."""

    def __new__(cls, min_score: float = 0.5, kinds: Sequence[str] | None = None) -> Self: ...
    def scan(self, text: str) -> list[PiiMatch]: ...
    def scan_batch(self, texts: Sequence[str]) -> list[list[PiiMatch]]: ...
    def redact(
        self, text: str, mode: str = "placeholder", kinds: Sequence[str] | None = None
    ) -> tuple[str, dict[str, str]]:
        """The text with items replaced, and placeholder -> original (placeholder mode). ValueError for bad modes."""

    @staticmethod
    def restore(text: str, mapping: dict[str, str]) -> str:
        """Puts originals back where their placeholders appear."""

    def stream(self, mode: str = "placeholder") -> PiiStreamRedactor: ...

@final
class PiiStreamRedactor:
    """Redacts streamed text; an item split across chunks is still caught."""

    def feed(self, chunk: str) -> str: ...
    def finish(self) -> str: ...
    @property
    def mapping(self) -> dict[str, str]: ...

# --- vector similarity (rust/src/vectors.rs) ---------------------------------------------------------------------

VectorLike = Sequence[float] | npt.NDArray[np.float32]

@final
class VectorIndex:
    """Per-namespace cosine-similarity index: exact while small, an HNSW graph (usearch) built in the background once
    a namespace reaches `hnsw_min_vectors`. No search crosses namespaces."""

    def __new__(cls, dim: int, hnsw_min_vectors: int = ..., expansion_search: int = ...) -> Self:
        """hnsw_min_vectors: the namespace size from which a graph is built (default 12,000); expansion_search: the
        graph search's breadth, recall against latency (default 64)."""
    @property
    def dim(self) -> int: ...
    def insert(self, namespace: str, id: int, vector: VectorLike) -> None:
        """Adds or replaces `id` (the vector is normalised). ValueError for a wrong dimension or a zero vector."""

    def remove(self, namespace: str, id: int) -> bool: ...
    def search(self, namespace: str, vector: VectorLike, k: int = 1, min_score: float = ...) -> list[tuple[int, float]]:
        """Up to `k` (id, cosine similarity) pairs with similarity >= min_score (default -1: all), best first."""

    def flush(self) -> None:
        """Waits until background graph building has caught up."""

    def count(self, namespace: str | None = None) -> int: ...
    def __len__(self) -> int: ...
    def save(self, path: str) -> None: ...
    @staticmethod
    def load(path: str) -> VectorIndex: ...
