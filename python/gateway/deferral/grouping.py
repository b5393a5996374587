"""Which held calls share a prefix, and in what order a released group goes: pure logic, no clock and no I/O.

Providers cache a prompt's prefix: Anthropic up to a `cache_control` breakpoint, OpenAI and Gemini automatically.
Calls that share a long prefix are cheaper sent one first (it writes the cache) and the rest after its answer (they
read it at the cached-input price) than all at once (each would miss, since the first has not been cached yet)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.chat import ChatRequest, Message

T = TypeVar("T")


def shared_part(request: ChatRequest) -> list[Message]:
    """What other calls may share with this one: every message before the last (system prompt, documents, earlier
    turns). Tools and the response format are part of the prefix's key too (providers render tools first)."""
    return request.messages[:-1]


def prefix_key(request: ChatRequest) -> str:
    """A digest of the shared part, the tools and the response format; empty when there is nothing to share."""
    shared = shared_part(request)
    if not shared and not request.tools:
        return ""
    # Dataclass reprs are deterministic and cover every field (images' bytes included).
    text = repr((shared, request.tools, request.response_format))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def waves(held: Sequence[T], prefix: Callable[[T], str]) -> tuple[list[T], list[tuple[T, list[T]]]]:
    """Split a released group: the calls sent at once, and (leader, followers) for each prefix that two or more calls
    share (`prefix` returns "" for a call whose prefix is too short to be worth caching). Arrival order is kept."""
    by_prefix: dict[str, list[T]] = {}
    at_once: list[T] = []
    for item in held:
        key = prefix(item)
        if key:
            by_prefix.setdefault(key, []).append(item)
        else:
            at_once.append(item)
    chains: list[tuple[T, list[T]]] = []
    for members in by_prefix.values():
        if len(members) == 1:
            at_once.append(members[0])
        else:
            chains.append((members[0], members[1:]))
    return at_once, chains
