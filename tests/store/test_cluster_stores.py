"""The query-type clusters' shared state in each place it can live: the database (SQLite, PostgreSQL) and Redis. One
writer at a time holds the lease and stores the centers; every other process reads them and assigns the same ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.learning.clusters import LEASE_S, ClusterBook, ClusterStore
from gateway.state.clusters import RedisClusterStore
from gateway.state.redis import RedisState
from gateway.store.feedback import SqlClusterStore
from tests.learning.test_clusters import groups
from tests.store.backends import BACKENDS, opened


@pytest.fixture(params=BACKENDS)
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ClusterStore, Callable[[float], None] | None]]:
    """The store, and for the database a way to move its clock on (Redis keeps time itself: leases are tested to
    hold there, not to lapse, which would take LEASE_S of real time)."""
    async with opened(request, tmp_path) as backend:
        if isinstance(backend, RedisState):
            yield RedisClusterStore(backend), None
            return
        now = [1000.0]

        def advance(seconds: float) -> None:
            now[0] += seconds

        yield SqlClusterStore(backend, clock=lambda: now[0]), advance


async def test_one_writer_holds_the_lease_and_only_it_saves(
    stores: tuple[ClusterStore, Callable[[float], None] | None],
) -> None:
    store, advance = stores
    assert await store.load("smart") is None
    assert await store.lead("smart", "a", LEASE_S)
    assert not await store.lead("smart", "b", LEASE_S)
    assert await store.lead("smart", "a", LEASE_S)  # renewed by its holder
    assert await store.lead("other", "b", LEASE_S)  # a lease per route
    await store.save("smart", "a", b"first")
    await store.save("smart", "b", b"not the writer")
    assert await store.load("smart") == b"first"
    if advance is not None:
        advance(LEASE_S + 1)  # a writer that stopped renewing is replaced
        assert await store.lead("smart", "b", LEASE_S)
        assert not await store.lead("smart", "a", LEASE_S)
        await store.save("smart", "a", b"late")
        assert await store.load("smart") == b"first"


async def test_processes_share_the_writers_clusters(
    stores: tuple[ClusterStore, Callable[[float], None] | None],
) -> None:
    store, _ = stores
    writer, reader = ClusterBook({"smart": (3, 0)}, store), ClusterBook({"smart": (3, 0)}, store)
    await writer.sync()
    await reader.sync()
    vectors, _ = groups(count=3, per_group=100, seed=6)
    assert [reader.assign("smart", v) for v in vectors] == [None] * len(vectors)  # a reader does not learn
    assert [writer.assign("smart", v) for v in vectors][-1] is not None
    await writer.sync()
    await reader.sync()
    sample = vectors[:50]
    assert [reader.assign("smart", v) for v in sample] == [writer.assign("smart", v) for v in sample]
    # A restart (a new process on the same store) reads the stored centers before its first call: the same ids.
    restarted = ClusterBook({"smart": (3, 99)}, store)
    await restarted.sync()
    assert [restarted.assign("smart", v) for v in sample] == [reader.assign("smart", v) for v in sample]
    assert len({writer.assign("smart", v) for v in sample}) > 1
