"""Query-type clusters: online mini-batch k-means over the prompt embeddings the semantic cache computes, one model
per learned route that lists the `cluster` feature, so that calls alike in meaning (not only in length, language or
code) share a query type.

The algorithm is Sculley's mini-batch k-means ("Web-scale k-means clustering", WWW 2010), as scikit-learn's
MiniBatchKMeans implements it: k-means++ seeds from the first embeddings, then each center moves toward the
embeddings assigned to it with a learning rate of one over its count, a batch at a time. So a center is the running
mean of what it absorbed, and it settles as evidence grows: a cluster's id (its index, fixed at seeding) keeps its
meaning. About 60 lines of numpy instead of scikit-learn and SciPy (some 100 MB), and the state is ours to persist.

Shared by every worker and instance: one process at a time (the holder of a lease in the database, or in Redis when
configured) learns and writes the centers; the others read them at each sync and assign with them, so every process
gives a prompt the same cluster id. A restart reads the stored centers before its first call.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import secrets
import struct
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

SEEDING_PER_CLUSTER = 8
"""Embeddings seen per cluster before the centers are seeded: k-means++ needs a sample several times k."""
BATCH = 64
"""Embeddings per mini-batch step."""
SYNC_S = 5.0
"""How often the writer stores the centers and the others read them."""
LEASE_S = 30.0
"""The writer's lease: a writer that stops renewing it (gone, or cut off) is replaced after this."""
_HEADER = struct.Struct("<4sIII")
_MAGIC = b"gwqc"

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ClusterState:
    """The centers of one route's clusters: row i is cluster i."""

    version: int
    centers: npt.NDArray[np.float32]
    counts: npt.NDArray[np.float64]
    """Embeddings each center has absorbed (its learning rate is one over this)."""

    def nearest(self, x: Vector) -> int:
        """argmin |x - c|^2 = argmin |c|^2 - 2 x.c: one product with the k centers."""
        return int(np.argmin(self._squared - 2.0 * (self.centers @ x)))

    @functools.cached_property
    def _squared(self) -> npt.NDArray[np.float32]:
        squared: npt.NDArray[np.float32] = (self.centers * self.centers).sum(axis=1)
        return squared

    def to_bytes(self) -> bytes:
        k, dim = self.centers.shape
        return (
            _HEADER.pack(_MAGIC, self.version, k, dim)
            + self.centers.astype("<f4").tobytes()
            + self.counts.astype("<f8").tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterState:
        magic, version, k, dim = _HEADER.unpack_from(data)
        if magic != _MAGIC or len(data) != _HEADER.size + k * dim * 4 + k * 8:
            raise ValueError("not a stored cluster state")
        centers = np.frombuffer(data, "<f4", k * dim, _HEADER.size).reshape(k, dim).astype(np.float32)
        counts = np.frombuffer(data, "<f8", k, _HEADER.size + k * dim * 4).astype(np.float64)
        return cls(version, centers, counts)


class RouteClusters:
    """One route's clusters in this process: assigns every embedding, and learns from them while it is the writer."""

    def __init__(self, k: int, seed: int) -> None:
        self.k = k
        self._rng = np.random.default_rng(seed)
        self.state: ClusterState | None = None
        self.learning = True
        """Whether this process learns (it is the writer, or has no one to share with)."""
        self._seen: list[Vector] = []
        """Before seeding, the sample to seed from; after, the current mini-batch."""
        self._assigned: list[int] = []

    def assign(self, vector: Vector) -> int | None:
        """The cluster of an embedding; None until the centers are seeded (or read from the writer)."""
        x = _unit(vector)
        state = self.state
        if state is not None and state.centers.shape[1] != len(x):
            if not self.learning:
                return None  # the writer's embedding model is another: its centers do not apply
            state = self.state = None  # the embedding model changed: start again
            self._seen, self._assigned = [], []
        if state is None:
            if self.learning:
                self._seen.append(x)
                if len(self._seen) >= SEEDING_PER_CLUSTER * self.k:
                    self._seed()
            return None
        cluster = state.nearest(x)
        if self.learning:
            self._seen.append(x)
            self._assigned.append(cluster)
            if len(self._seen) >= BATCH:
                self._step()
        return cluster

    def adopt(self, state: ClusterState) -> None:
        """The writer's centers, read from the store."""
        self.state = state
        self._seen, self._assigned = [], []

    def _seed(self) -> None:
        """k-means++ (Arthur and Vassilvitskii, 2007): each next seed drawn with probability proportional to its
        squared distance from the seeds so far; then the sample is the first mini-batch."""
        sample = np.stack(self._seen)
        chosen = [int(self._rng.integers(len(sample)))]
        nearest = ((sample - sample[chosen[0]]) ** 2).sum(axis=1)
        while len(chosen) < self.k:
            total = float(nearest.sum())
            # All left are copies of seeds: any will do (the spare cluster stays empty until the traffic varies).
            index = int(self._rng.choice(len(sample), p=nearest / total)) if total > 0 else len(chosen) % len(sample)
            chosen.append(index)
            nearest = np.minimum(nearest, ((sample - sample[index]) ** 2).sum(axis=1))
        centers = sample[chosen].astype(np.float32)
        state = self.state = ClusterState(1, centers, np.ones(self.k))
        self._assigned = [state.nearest(x) for x in sample]
        self._step()

    def _step(self) -> None:
        """One mini-batch: every embedding was assigned with the centers as they were; each center then moves
        toward its embeddings one by one, by one over its count."""
        state = self.state
        assert state is not None
        centers, counts = state.centers.copy(), state.counts.copy()
        for x, cluster in zip(self._seen, self._assigned, strict=True):
            counts[cluster] += 1.0
            centers[cluster] += (x - centers[cluster]) / counts[cluster]
        self.state = ClusterState(state.version + 1, centers, counts)
        self._seen, self._assigned = [], []


def _unit(vector: Vector) -> Vector:
    x = np.asarray(vector, dtype=np.float32)
    norm = math.sqrt(float(x @ x))
    return x / norm if norm > 0 else x


class ClusterStore(Protocol):
    """Where the writer keeps the centers and its lease (store/clusters.py: the database; state/clusters.py: Redis)."""

    async def lead(self, route: str, owner: str, lease_s: float) -> bool:
        """Takes or renews the route's writer lease for `owner`; whether `owner` holds it now."""

    async def save(self, route: str, owner: str, state: bytes) -> None:
        """Stores the centers, if `owner` still holds the lease."""

    async def load(self, route: str) -> bytes | None: ...


class ClusterBook:
    """Every learned route's clusters in this process, and their sharing."""

    def __init__(self, routes: dict[str, tuple[int, int]], store: ClusterStore | None = None) -> None:
        """`routes`: per route with the cluster feature, (k, seed). Without a store this process learns alone."""
        self._routes = {route: RouteClusters(k, seed) for route, (k, seed) in routes.items()}
        self._store = store
        self._owner = secrets.token_hex(8)
        self._saved: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        if store is not None:
            for clusters in self._routes.values():
                clusters.learning = False  # until the lease says otherwise

    def assign(self, route: str, vector: Vector) -> int | None:
        clusters = self._routes.get(route)
        return clusters.assign(vector) if clusters is not None else None

    async def sync(self) -> None:
        """The writer stores what it learned; the others read it. A process that becomes the writer first reads the
        stored centers, so the ids go on from there."""
        store = self._store
        if store is None:
            return
        for route, clusters in self._routes.items():
            leading = await store.lead(route, self._owner, LEASE_S)
            if leading and not clusters.learning:
                await self._read(route, clusters)
            clusters.learning = leading
            state = clusters.state
            if leading and state is not None and state.version != self._saved.get(route):
                await store.save(route, self._owner, state.to_bytes())
                self._saved[route] = state.version
            elif not leading:
                await self._read(route, clusters)

    async def _read(self, route: str, clusters: RouteClusters) -> None:
        assert self._store is not None
        data = await self._store.load(route)
        if data is None:
            return
        try:
            state = ClusterState.from_bytes(data)
        except (ValueError, struct.error):
            log.warning("the stored clusters of route %s are unreadable; they are learned again", route)
            return
        if clusters.state is None or state.version != clusters.state.version:
            clusters.adopt(state)
            self._saved[route] = state.version

    def start(self) -> None:
        if self._store is not None and self._routes:
            self._task = asyncio.get_running_loop().create_task(self._sync_forever(), name="clusters-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            with contextlib.suppress(Exception):  # a last save is a courtesy: the next writer learns on
                await self.sync()

    async def _sync_forever(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception:
                log.warning("sharing the query-type clusters failed; retrying in %g s", SYNC_S, exc_info=True)
            await asyncio.sleep(SYNC_S)
