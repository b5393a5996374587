"""The domain of a chat call, independent of protobuf and of any provider's wire format.

Servicers translate protobuf into these objects, providers translate them into their HTTP bodies; nothing else in
the pipeline sees either wire format. Slotted dataclasses keep construction cheap on the hot path; the values built
for every call or chunk (Message, ToolCall, ToolCallDelta) are not frozen, since a frozen dataclass sets each field
through object.__setattr__ (1.6 µs against 0.5 µs for a Message here), but nothing changes them once built: a
stage that rewrites one builds a new one (dataclasses.replace).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset(("system", "user", "assistant", "tool"))


@dataclass(slots=True, frozen=True)
class ImagePart:
    """An image: either a URL the provider fetches (http(s) or data:) or inline bytes with their mime type."""

    url: str = ""
    data: bytes = b""
    mime_type: str = ""
    detail: str = ""


ContentPart = str | ImagePart
"""A text part is a plain str; anything else is an image."""


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments_json: str


@dataclass(slots=True)
class Message:
    role: Role
    content: str = ""
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    name: str = ""
    untrusted: bool = False
    """The caller marked the text as not its own (a retrieved document): the injection guard scores it whatever
    the role."""

    def text(self) -> str:
        """All text of the message (content, then text parts), as counted and scanned."""
        if not self.parts:
            return self.content
        texts = [self.content] if self.content else []
        texts.extend(part for part in self.parts if isinstance(part, str))
        return "\n".join(texts)


@dataclass(slots=True, frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    """The JSON Schema of the arguments, already parsed and validated as an object."""


@dataclass(slots=True, frozen=True)
class ResponseFormat:
    kind: Literal["text", "json_object", "json_schema"]
    schema_name: str = ""
    schema: dict[str, Any] | None = None


class CacheMode(StrEnum):
    DEFAULT = "default"
    """The model's or route's `cache:` config decides."""
    OFF = "off"
    READ_WRITE = "read_write"
    READ_ONLY = "read_only"
    WRITE_ONLY = "write_only"
    """Always asks the provider, then stores the answer: refreshes an entry."""


@dataclass(slots=True, frozen=True)
class CacheControl:
    """What the caller says about the response cache for one request."""

    mode: CacheMode = CacheMode.DEFAULT
    ttl_s: int = 0
    """0: the config's ttl."""
    namespace: str = ""
    allow_semantic: bool | None = None
    """None: the config decides."""


@dataclass(slots=True)
class ChatRequest:
    """A validated chat request, as every pipeline stage and provider sees it."""

    model: str
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    user: str = ""
    response_format: ResponseFormat | None = None
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    batch: bool = False
    """Batch priority: waits behind interactive calls when targets are rate-limited."""
    defer_up_to_s: float | None = None
    """The caller can wait this long for its answer: the gateway may hold the call to send it with others, or in a
    cheaper price window (deferral/)."""
    prompt_cache: bool = False
    """Set by the gateway for held calls that share a long prefix: adapters whose provider caches prompts only where
    asked (Anthropic's cache_control) mark the prefix for caching."""
    cache: CacheControl | None = None
    text_chars: int = 0
    """Characters of text in all messages (content, text parts, tool-call arguments): size limits and token bounds."""
    images: int = 0
    """Image parts in all messages."""
    passthrough: dict[str, Any] = field(default_factory=dict)
    """OpenAI parameters the gateway does not model (penalties, logit_bias, logprobs...), from the HTTP front door:
    sent as given to providers that accept them (Provider.accepts_passthrough); other targets refuse the call."""


@dataclass(slots=True)
class Usage:
    """Token counts as the provider reported them (or as the gateway counted them, for simulated answers)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class ChatResult:
    """A provider's whole answer."""

    upstream_id: str
    upstream_model: str
    text: str
    finish_reason: str
    usage: Usage | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: Any = None
    """The provider's own `logprobs` of the answer, when a passthrough parameter asked for them."""


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""


@dataclass(slots=True)
class ChatDelta:
    """One piece of a streamed answer. `finish_reason` and `usage` arrive on (or near) the last delta."""

    text: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    finish_reason: str = ""
    usage: Usage | None = None
    upstream_model: str = ""
    logprobs: Any = None
    """The provider's own `logprobs` of this piece, when a passthrough parameter asked for them."""
