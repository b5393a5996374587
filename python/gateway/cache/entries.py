"""What the cache stores for one answer, how it is encoded for a backend, and what a call learns about the cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.chat import ChatResult, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class EntryKey:
    """Where an entry lives: the partition (team, namespace, model or route asked for) and the exact fingerprint.

    `team` is "" for a route that declares a shared cache."""

    team: str
    namespace: str
    model: str
    id: str


@dataclass(slots=True)
class CacheEntry:
    key: EntryKey
    context: str
    """The fingerprint of everything but the last user turn: the semantic index's partition."""
    prompt: str
    """The last user turn's text, which the semantic verify stage compares."""
    text: str
    finish_reason: str
    upstream_model: str
    served_model: str
    provider: str
    usage: Usage
    cost_usd: float
    """What the provider call cost: what each hit saves."""
    created_at: float
    expires_at: float
    tool_calls: list[ToolCall] = field(default_factory=list)
    vector: str = ""
    """An embedding entry's vector: base64 of little-endian float32 (its text and tool calls are empty)."""

    def result(self) -> ChatResult:
        """A fresh result to serve (the output guardrails rewrite the one they get)."""
        return ChatResult("", self.upstream_model, self.text, self.finish_reason, self.usage, list(self.tool_calls))


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """What a call tells its caller about the cache; a miss is `CacheInfo(hit=False)`."""

    hit: bool
    kind: str = ""
    similarity: float = 0.0
    entry_id: str = ""
    age_s: int = 0

    def audit(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "similarity": round(self.similarity, 4),
            "entry_id": self.entry_id,
            "age_s": self.age_s,
        }


MISS = CacheInfo(hit=False)


def encode(entry: CacheEntry) -> bytes:
    """orjson of the dataclass (nested dataclasses included): about a microsecond for a short answer."""
    return orjson.dumps(entry)


def decode(data: bytes) -> CacheEntry:
    raw = orjson.loads(data)
    usage = raw["usage"]
    return CacheEntry(
        key=EntryKey(**raw["key"]),
        context=raw["context"],
        prompt=raw["prompt"],
        text=raw["text"],
        finish_reason=raw["finish_reason"],
        upstream_model=raw["upstream_model"],
        served_model=raw["served_model"],
        provider=raw["provider"],
        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"], usage["cached_prompt_tokens"]),
        cost_usd=raw["cost_usd"],
        created_at=raw["created_at"],
        expires_at=raw["expires_at"],
        tool_calls=[ToolCall(**call) for call in raw["tool_calls"]],
        vector=raw.get("vector", ""),
    )
