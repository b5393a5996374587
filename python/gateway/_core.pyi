"""Typed stubs of gateway._core, the Rust hot path (checked against the module by `make lint` with stubtest)."""

from collections.abc import Iterable, Sequence
from typing import Literal

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
