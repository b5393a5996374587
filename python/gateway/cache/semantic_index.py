"""This process's index of stored prompts for the semantic cache, over the Rust core's VectorIndex and VectorSnapshot.

One namespace per context fingerprint (team, namespace, model or route, system prompt and earlier turns, parameters):
a search never sees an entry that another team, namespace or conversation stored. Each entry's key, prompt text and
expiry are stored with its vector (its payload), so the verify stage reads candidates without a backend round trip
and only the chosen one is fetched.

The index has two layers. The base is a snapshot: a file memory-mapped read-only, whose graph and rows are pages that
every process mapping it shares, and which a process starting up maps at once instead of rebuilding a graph. Above
it, this process's own VectorIndex holds what it stored or learned since that snapshot; its entries hide the base's
copies, and a base entry this process removed stays hidden. Without a snapshot, the own layer is the whole index.

SnapshotFolder shares a base between the processes of one state folder: the holder of its lock file writes the next
snapshot from the current one plus its own layer (the graph copied and grown by a bounded number of rows, never
rebuilt), then every process maps it and drops from its own layer what the snapshot holds identically. The lock
passes to another process when its holder exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from gateway._core import VectorIndex, VectorSnapshot
from gateway.cache.entries import EntryKey

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.float32]

log = logging.getLogger(__name__)

Snapshot = VectorSnapshot
"""A mapped snapshot: the index's base."""
Place = tuple[str, int]
"""(context, vector id): where an entry sits in the index."""

SNAPSHOT_FILE = "semantic-index.gwv"
LOCK_FILE = "semantic-index.lock"
SNAPSHOT_INTERVAL_S = 30.0
"""How often the writer folds what arrived into a new snapshot; more often while the graph still misses rows."""
CATCH_UP_INTERVAL_S = 1.0
"""Between snapshots while the base still has rows outside its graph: each merge adds MAX_GRAPH_ADDS of them."""
MAX_GRAPH_ADDS = 20_000
"""Rows a merge adds to the graph: ~0.7 ms each on one core at 100k x 384, so a merge stays around 15 s, and a
snapshot with the graph's progress comes out that often while a graph is first built."""
BASE_EXTRA = 4
"""Base hits asked beyond k, for the ones this process hides."""


@dataclass(frozen=True, slots=True)
class Candidate:
    key: EntryKey
    prompt: str
    similarity: float
    expires_at: float


class SemanticIndex:
    def __init__(self, dim: int, max_entries: int) -> None:
        self.dim = dim
        self._own = VectorIndex(dim)
        self._max_entries = max_entries
        self._order: OrderedDict[Place, tuple[str, str]] = OrderedDict()
        """The own layer's entries, oldest first: place -> (entry id, team)."""
        self._by_entry: dict[str, Place] = {}
        self._base: VectorSnapshot | None = None
        self._hidden: set[Place] = set()
        """Base entries this process removed (expired, gone from the backend, replaced elsewhere)."""
        self._base_teams: Counter[str | None] | None = None
        """Base entries per team (None: unreadable ones), counted once per snapshot."""
        self.writing = False
        """Set while a snapshot is being written from this index: removals then hide their base copy too, in case the
        snapshot takes the entry before it went."""

    def __len__(self) -> int:
        return self.count(None)

    @property
    def base(self) -> VectorSnapshot | None:
        return self._base

    def sizes(self) -> tuple[int, int]:
        """(entries in this process's own layer, entries in the base snapshot)."""
        base = self._base
        return len(self._order), base.count() if base is not None else 0

    def count(self, team: str | None) -> int:
        """Entries of `team`, or all with None. A scan of the own layer (and, once per snapshot, of the base's
        payloads): for statistics, not the request path; safe in a thread."""
        own = list(self._order.items())
        total = sum(1 for _, (_, t) in own if team is None or t == team)
        base = self._base
        if base is None:
            return total
        teams = self._base_teams
        if teams is None:
            teams = Counter(_team(p) for ns in base.namespaces() for p in base.payloads(ns))
            self._base_teams = teams
        total += teams.total() if team is None else teams[team]
        for place in [p for p, _ in own] + list(self._hidden):
            payload = base.payload(*place)
            if payload is not None and (team is None or _team(payload) == team):
                total -= 1  # counted in the own layer, or hidden
        return total

    def add(self, context: str, key: EntryKey, prompt: str, vector: Vector, expires_at: float) -> None:
        vid = _vector_id(key.id)
        place = (context, vid)
        old = self._by_entry.get(key.id)
        if old is not None and old != place:
            self.remove(old[0], key.id)
        # The array's buffer: the core reads it without a copy.
        self._own.insert(context, vid, vector.data, _encode(key, prompt, expires_at))
        self._order[place] = (key.id, key.team)
        self._order.move_to_end(place)
        self._by_entry[key.id] = place
        self._hidden.discard(place)
        while len(self._order) > self._max_entries:
            oldest = next(iter(self._order))
            self._drop_own(oldest)

    def search(self, context: str, vector: Vector, k: int, min_score: float, now: float) -> list[Candidate]:
        """Up to k live candidates with cosine >= min_score, best first; expired ones are dropped on the way."""
        hits: list[tuple[float, int, bool]] = [
            (s, vid, True) for vid, s in self._own.search(context, vector.data, k, min_score)
        ]
        base = self._base
        if base is not None:
            for vid, score in base.search(context, vector.data, k + BASE_EXTRA, min_score):
                place = (context, vid)
                if place not in self._order and place not in self._hidden:
                    hits.append((score, vid, False))
            hits.sort(key=lambda h: -h[0])
        found: list[Candidate] = []
        for score, vid, own in hits:
            payload = self._own.payload(context, vid) if own else base.payload(context, vid) if base else None
            if payload is None:
                continue  # removed since the search
            decoded = _decode(payload)
            if decoded is None:  # damaged on disk: this entry is unusable, not the index
                log.warning("semantic index: an unreadable entry in the snapshot skipped")
                self._hidden.add((context, vid))
                continue
            key, prompt, expires_at = decoded
            if expires_at <= now:
                self.remove(context, key.id)
                continue
            found.append(Candidate(key, prompt, score, expires_at))
            if len(found) == k:
                break
        return found

    def forget(self, entry_id: str) -> None:
        """An entry gone from the backend (purged, evicted). Found by id in the own layer; a base entry is not
        indexed by entry id, and goes on its next hit, when the backend no longer has it."""
        place = self._by_entry.get(entry_id)
        if place is not None:
            self.remove(place[0], entry_id)

    def remove(self, context: str, entry_id: str) -> None:
        place = (context, _vector_id(entry_id))
        self._drop_own(place)
        base = self._base
        if self.writing or (base is not None and base.contains(*place)):
            self._hidden.add(place)

    def adopt(self, snapshot: VectorSnapshot) -> None:
        """Searches `snapshot` as the base from now on, and drops from the own layer what it holds identically.
        ValueError when its vectors have another dimension. Safe in a thread (the own layer's removal is the long
        part: O(own entries))."""
        if snapshot.dim != self.dim:
            raise ValueError(f"the snapshot holds {snapshot.dim}-dimensional vectors; this index {self.dim}")
        self._base = snapshot
        self._base_teams = None
        for context, vid in self._own.remove_shared(snapshot):
            entry = self._order.pop((context, vid), None)
            if entry is not None and self._by_entry.get(entry[0]) == (context, vid):
                del self._by_entry[entry[0]]
        for place in list(self._hidden):  # in place: a removal on another thread meanwhile is kept
            if not snapshot.contains(*place):
                self._hidden.discard(place)

    def needs_snapshot(self) -> bool:
        """Whether a new snapshot would differ from the base: entries of its own, hidden ones, or base rows the
        graph still lacks."""
        base = self._base
        return bool(self._order or self._hidden) or (base is not None and base.pending() > 0)

    def write_snapshot(
        self, path: Path, label: bytes, *, max_graph_adds: int, threads: int = 1
    ) -> tuple[int, int, int]:
        """Writes the next snapshot to `path`: the base without the hidden entries, plus the own layer, bounded to
        max_entries (the newest). Returns (entries, entries pending outside a graph, rows added to graphs). Long (a
        graph copy and up to max_graph_adds graph inserts): run it in a thread, with `writing` set."""
        return self._own.save_merged(
            path,
            self._base,
            list(self._hidden),
            max_entries=self._max_entries,
            max_graph_adds=max_graph_adds,
            threads=threads,
            label=label,
        )

    def _drop_own(self, place: Place) -> None:
        entry = self._order.pop(place, None)
        if entry is None:
            return
        self._own.remove(*place)
        if self._by_entry.get(entry[0]) == place:
            del self._by_entry[entry[0]]


class SnapshotFolder:
    """The semantic index the processes of one state folder share: the newest snapshot there, and a lock file whose
    holder writes the next one. flock: the kernel releases the lock when its holder exits, however it exits."""

    def __init__(
        self,
        folder: Path,
        *,
        interval_s: float = SNAPSHOT_INTERVAL_S,
        catch_up_s: float = CATCH_UP_INTERVAL_S,
        max_graph_adds: int = MAX_GRAPH_ADDS,
    ) -> None:
        self.folder = folder
        self.path = folder / SNAPSHOT_FILE
        self.interval_s = interval_s
        self.catch_up_s = catch_up_s
        self.max_graph_adds = max_graph_adds
        self._lock: int | None = None
        self._seen: tuple[int, int, int] | None = None
        self._written_at = float("-inf")

    def changed(self) -> bool:
        """Whether a snapshot other than the one last opened is in place (one stat)."""
        try:
            return _identity(self.path) != self._seen
        except FileNotFoundError:
            return False

    def open_newest(self) -> VectorSnapshot | None:
        """The snapshot in place if it is not the one last opened, else None; a damaged one is logged and skipped.
        Blocking (a map and a check of the file's lookup tables): in a thread."""
        try:
            seen = _identity(self.path)
        except FileNotFoundError:
            return None
        if seen == self._seen:
            return None
        self._seen = seen  # a file replaced between the stat and the open is opened again next time: harmless
        try:
            return VectorSnapshot(self.path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            log.warning("semantic index snapshot %s skipped: %s", self.path, err)
            return None

    def lead(self) -> bool:
        """Whether this process writes the snapshots: it holds the lock, or takes it now that it is free."""
        if self._lock is not None:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock = fd
        # Only the lock's holder writes: a temporary file still here is a former holder's, cut short.
        for stale in self.folder.glob(f".{SNAPSHOT_FILE}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        return True

    def due(self, now: float, index: SemanticIndex) -> bool:
        base = index.base
        wait = self.catch_up_s if base is not None and base.pending() > 0 else self.interval_s
        return now - self._written_at >= wait and index.needs_snapshot()

    def write(self, index: SemanticIndex, label: bytes, now: float) -> VectorSnapshot | None:
        """Writes the next snapshot from `index` and opens it. Blocking: in a thread, with index.writing set."""
        self._written_at = now
        entries, pending, added = index.write_snapshot(self.path, label, max_graph_adds=self.max_graph_adds)
        log.info(
            "semantic index snapshot written: %d entries, %d outside the graph, %d added to it", entries, pending, added
        )
        return self.open_newest()

    def close(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock)
            self._lock = None


def _identity(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _encode(key: EntryKey, prompt: str, expires_at: float) -> bytes:
    return orjson.dumps([key.team, key.namespace, key.model, key.id, prompt, expires_at])


def _decode(payload: bytes) -> tuple[EntryKey, str, float] | None:
    """None for a payload that does not read back: a snapshot file damaged on disk (its structure is checked when it
    is mapped, its payloads as they are read)."""
    try:
        team, namespace, model, entry_id, prompt, expires_at = orjson.loads(payload)
        return EntryKey(str(team), str(namespace), str(model), str(entry_id)), str(prompt), float(expires_at)
    except (ValueError, TypeError):
        return None


def _team(payload: bytes) -> str | None:
    decoded = _decode(payload)
    return decoded[0].team if decoded is not None else None


def _vector_id(entry_id: str) -> int:
    """The first 64 bits of the entry's 128-bit fingerprint: unique within a context for any realistic count."""
    return int(entry_id[:16], 16)
