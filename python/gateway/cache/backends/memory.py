"""The embedded default: an LRU of encoded entries in this process, bounded by bytes.

Entries are kept encoded, as Redis keeps them: the bound then counts what is really held, and a hit hands out a fresh
copy that the output guardrails may rewrite without touching the stored answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from gateway.cache.backends import PurgeFilter, StoredStats
from gateway.cache.entries import CacheEntry, EntryKey, decode, encode

_OVERHEAD_BYTES = 200
"""Per entry beyond its encoded bytes: the dict slot, the key and the tuple (measured with sys.getsizeof)."""


class MemoryBackend:
    name = "memory"

    def __init__(self, max_bytes: int, on_evict: Callable[[EntryKey], None] | None = None) -> None:
        self.max_bytes = max_bytes
        self.on_evict = on_evict
        """Told of each entry the LRU bound pushes out (the semantic index forgets it)."""
        self._entries: OrderedDict[str, tuple[bytes, EntryKey, float, float]] = OrderedDict()
        """id -> (encoded entry, key, created_at, expires_at), least recently used first."""
        self._bytes = 0

    async def get(self, key: EntryKey, now: float) -> CacheEntry | None:
        found = self._entries.get(key.id)
        if found is None:
            return None
        data, _, _, expires_at = found
        if expires_at <= now:
            self._drop(key.id)
            return None
        self._entries.move_to_end(key.id)
        return decode(data)

    async def put(self, entry: CacheEntry, now: float) -> None:
        data = encode(entry)
        size = len(data) + _OVERHEAD_BYTES
        if size > self.max_bytes:
            return
        self._drop(entry.key.id)
        self._entries[entry.key.id] = (data, entry.key, entry.created_at, entry.expires_at)
        self._bytes += size
        while self._bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            evicted = self._entries[oldest][1]
            self._drop(oldest)
            if self.on_evict is not None:
                self.on_evict(evicted)

    async def purge(self, where: PurgeFilter) -> list[EntryKey]:
        purged = [key for _, key, created_at, _ in self._entries.values() if where.matches(key, created_at)]
        for key in purged:
            self._drop(key.id)
        return purged

    async def stats(self, team: str | None) -> StoredStats:
        if team is None:
            return StoredStats(len(self._entries), self._bytes)
        sizes = [len(data) + _OVERHEAD_BYTES for data, key, _, _ in self._entries.values() if key.team == team]
        return StoredStats(len(sizes), sum(sizes))

    async def close(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _drop(self, entry_id: str) -> None:
        found = self._entries.pop(entry_id, None)
        if found is not None:
            self._bytes -= len(found[0]) + _OVERHEAD_BYTES
