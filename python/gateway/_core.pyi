"""Typed stubs of gateway._core, the Rust hot path (checked against the module by `make lint` with stubtest)."""

from collections.abc import Iterable, Sequence
from typing import Literal, Self, final

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

def encode_batch(texts: Sequence[str], encoding_name: str) -> list[list[int]]:
    """Ids of many texts, spread over threads when the batch is large."""

def count_chat_tokens(
    messages: Sequence[tuple[str, str, str]],
    encoding_name: str,
    per_message: int = 3,
    per_name: int = 1,
    reply: int = 3,
) -> int:
    """Tokens a chat costs as a prompt: (role, name, content) rows plus the model family's framing."""

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
