"""Fingerprints of a request: what makes two requests the same for the exact cache, and the same context for the
semantic one.

The canonical form is orjson of the domain objects themselves (dataclasses serialise natively, dict keys sorted, so
a tool's JSON schema written in another key order is the same request) hashed by BLAKE2b. Left out on purpose: the
caller's `user`, metadata and priority, which do not change what the model answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from gateway.chat import ChatRequest, ContentPart, Message, ToolCall
from gateway.embeddings import EmbedRequest


@dataclass(frozen=True, slots=True)
class Fingerprint:
    exact: str
    """32 hex digits over the partition, every message and every answer-changing parameter: the entry's id."""
    context: str
    """The same without the last user turn's text: semantic matches are searched only among entries sharing it."""
    prompt: str
    """The last user turn's text; "" when the last message is not plain user text (no semantic match then)."""


def fingerprint(request: ChatRequest, partition: tuple[str, str, str]) -> Fingerprint:
    """`partition` is (team, namespace, model or route asked for)."""
    messages = request.messages
    prompt = semantic_prompt(request)
    earlier = messages[:-1] if prompt else messages
    context = _digest(
        (
            partition,
            [_answer_fields(message) for message in earlier],
            request.max_tokens,
            request.temperature,
            request.top_p,
            request.stop,
            request.seed,
            request.tools,
            request.tool_choice,
            request.response_format,
        )
    )
    exact = _digest((context, prompt)) if prompt else context
    return Fingerprint(exact, context, prompt)


def semantic_prompt(request: ChatRequest) -> str:
    """The text the semantic cache embeds: the last turn when it is plain user text, else ""."""
    last = request.messages[-1]
    return last.content if last.role == "user" and not last.parts and not last.tool_calls else ""


def embedding_ids(request: EmbedRequest, partition: tuple[str, str, str]) -> list[str]:
    """One entry id per input: the partition, the vector length asked for and the input's text. The encoding is not
    in it: an entry keeps the vector, whatever form the caller wants it in."""
    context = _digest((partition, "embedding", request.dimensions))
    return [_digest((context, text)) for text in request.inputs]


@dataclass(slots=True, frozen=True)
class _SentMessage:
    """What of a message reaches the provider, in `Message`'s field order (orjson writes a dataclass's fields in
    their order, not sorted, so fingerprints stay what they were before `untrusted` existed). `untrusted` only tells
    the injection guard how to read a message, and answers are stored after that guard: marking a message changes
    no fingerprint."""

    role: str
    content: str
    parts: tuple[ContentPart, ...]
    tool_calls: tuple[ToolCall, ...]
    tool_call_id: str
    name: str


def _answer_fields(message: Message) -> _SentMessage:
    return _SentMessage(
        message.role, message.content, message.parts, message.tool_calls, message.tool_call_id, message.name
    )


def _digest(value: object) -> str:
    return hashlib.blake2b(
        orjson.dumps(value, default=_image_bytes, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).hexdigest()


def _image_bytes(value: object) -> str:
    """Inline image bytes enter the fingerprint as their own digest (orjson does not serialise bytes)."""
    if isinstance(value, bytes):
        return hashlib.blake2b(value, digest_size=16).hexdigest()
    raise TypeError(f"cannot fingerprint {type(value).__name__}")
