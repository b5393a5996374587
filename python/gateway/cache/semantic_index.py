"""This process's index of stored prompts for the semantic cache, over the Rust core's VectorIndex.

One VectorIndex namespace per context fingerprint (team, namespace, model or route, system prompt and earlier turns,
parameters): a search never sees an entry that another team, namespace or conversation stored. Beside each vector
the index keeps the entry's key, prompt text and expiry, so the verify stage reads candidates without a backend round
trip and only the chosen one is fetched. Bounded by entry count, oldest first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway._core import VectorIndex
from gateway.cache.entries import EntryKey

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    key: EntryKey
    prompt: str
    similarity: float
    expires_at: float


class SemanticIndex:
    def __init__(self, dim: int, max_entries: int) -> None:
        self._index = VectorIndex(dim)
        self._max_entries = max_entries
        self._items: OrderedDict[tuple[str, int], tuple[EntryKey, str, float]] = OrderedDict()
        """(context, vector id) -> (entry key, prompt, expires_at), oldest first."""
        self._by_entry: dict[str, tuple[str, int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def count(self, team: str | None) -> int:
        """Entries of `team` (a scan: for statistics, not the request path), or all with None."""
        if team is None:
            return len(self._items)
        return sum(1 for key, _, _ in self._items.values() if key.team == team)

    def add(self, context: str, key: EntryKey, prompt: str, vector: Vector, expires_at: float) -> None:
        vid = _vector_id(key.id)
        self.forget(key.id)
        self._index.insert(context, vid, vector.data)  # the array's buffer: the core reads it without a copy
        self._items[(context, vid)] = (key, prompt, expires_at)
        self._by_entry[key.id] = (context, vid)
        while len(self._items) > self._max_entries:
            (old_context, old_vid), (old_key, _, _) = next(iter(self._items.items()))
            self._remove(old_context, old_vid, old_key.id)

    def search(self, context: str, vector: Vector, k: int, min_score: float, now: float) -> list[Candidate]:
        """Up to k live candidates with cosine >= min_score, best first; expired ones are dropped on the way."""
        found = []
        for vid, score in self._index.search(context, vector.data, k, min_score):
            item = self._items.get((context, vid))
            if item is None:
                continue
            key, prompt, expires_at = item
            if expires_at <= now:
                self._remove(context, vid, key.id)
                continue
            found.append(Candidate(key, prompt, score, expires_at))
        return found

    def forget(self, entry_id: str) -> None:
        place = self._by_entry.get(entry_id)
        if place is not None:
            self._remove(place[0], place[1], entry_id)

    def _remove(self, context: str, vid: int, entry_id: str) -> None:
        self._index.remove(context, vid)
        self._items.pop((context, vid), None)
        self._by_entry.pop(entry_id, None)


def _vector_id(entry_id: str) -> int:
    """The first 64 bits of the entry's 128-bit fingerprint: unique within a context for any realistic count."""
    return int(entry_id[:16], 16)
