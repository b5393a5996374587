"""Where cache entries live: in this process (memory, the embedded default) or in Redis (shared by every gateway)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.cache.entries import CacheEntry, EntryKey


class BackendUnavailable(Exception):
    """The backend cannot be reached or answered too slowly; the call goes on without the cache."""


@dataclass(frozen=True, slots=True)
class PurgeFilter:
    """Entries matching every field set; nothing set matches every entry."""

    team: str | None = None
    namespace: str | None = None
    model: str | None = None
    before: float | None = None
    """Stored before this epoch time."""
    entry_id: str | None = None

    def matches(self, key: EntryKey, created_at: float) -> bool:
        return (
            (self.team is None or key.team == self.team)
            and (self.namespace is None or key.namespace == self.namespace)
            and (self.model is None or key.model == self.model)
            and (self.entry_id is None or key.id == self.entry_id)
            and (self.before is None or created_at < self.before)
        )


@dataclass(frozen=True, slots=True)
class SharedVector:
    """A semantic entry as the other gateways learn of it: enough to add it to their own index."""

    context: str
    key: EntryKey
    prompt: str
    expires_at: float
    vector: bytes
    """float32, native order."""
    origin: str
    """The gateway process that stored it (which skips its own)."""


class VectorFeed(Protocol):
    """Semantic entries published by every gateway sharing a backend, so each one's index finds the others'."""

    async def publish(self, item: SharedVector) -> None: ...

    async def follow(self, after: str, block_s: float) -> tuple[str, list[SharedVector]]:
        """Entries published after the position `after` ("0": all kept), waiting up to block_s for one; returns the
        position to continue from. BackendUnavailable when the store cannot answer."""


@dataclass(frozen=True, slots=True)
class StoredStats:
    entries: int
    bytes: int


class CacheBackend(Protocol):
    name: str
    max_bytes: int
    """The bound the backend enforces; 0 when the store bounds itself (Redis' maxmemory)."""

    async def get(self, key: EntryKey, now: float) -> CacheEntry | None:
        """The entry, or None when absent or expired. BackendUnavailable when the store cannot answer."""

    async def put(self, entry: CacheEntry, now: float) -> None:
        """Stores (or replaces) an entry until its expires_at."""

    async def purge(self, where: PurgeFilter) -> list[EntryKey]:
        """Deletes the matching entries and names them (so the semantic index can forget them)."""

    async def stats(self, team: str | None) -> StoredStats: ...

    async def close(self) -> None: ...
