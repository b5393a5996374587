"""The learned routes' shared profile sums in each place they can live: the database (SQLite, PostgreSQL) and Redis.
Adds from several writers sum; epochs past the oldest a reader needs are dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.learning.profiles import ProfileBook, ProfileStore
from gateway.state.profiles import RedisProfileStore
from gateway.state.redis import RedisState
from gateway.store.feedback import SqlProfileStore
from tests.store.backends import BACKENDS, opened


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProfileStore]:
    async with opened(request, tmp_path) as backend:
        yield RedisProfileStore(backend) if isinstance(backend, RedisState) else SqlProfileStore(backend)


async def test_writers_sum_and_old_epochs_are_dropped(store: ProfileStore) -> None:
    row = ("smart", "tokens<64 lang=en", "small", 0.0)
    old = ("smart", "tokens<64 lang=en", "small", -1000.0)
    await asyncio.gather(
        store.add({row: {"calls": 1.0, "quality": 0.5}, old: {"calls": 4.0}}),
        store.add({row: {"calls": 2.0, "feedback": 1.0}}),
    )
    assert (await store.load({"smart": -1000.0}, -1000.0))[row] == pytest.approx(
        {"calls": 3.0, "quality": 0.5, "feedback": 1.0}
    )
    assert (await store.load({"smart": -1000.0}, -1000.0))[old] == {"calls": 4.0}
    assert old not in await store.load({"smart": 0.0}, 0.0)
    assert old not in await store.load({"smart": -1000.0}, -1000.0)  # gone for good, not only left out


async def test_each_route_keeps_the_epochs_its_memory_needs(store: ProfileStore) -> None:
    rows = {(route, "t", "m", epoch): {"calls": 1.0} for route in ("short", "long", "gone") for epoch in (-500.0, 0.0)}
    await store.add(rows)
    kept = await store.load({"short": 0.0, "long": -1000.0}, 0.0)
    # The long memory keeps its older epoch; a route gone from the config ages out at the floor.
    assert sorted(kept) == [
        ("gone", "t", "m", 0.0),
        ("long", "t", "m", -500.0),
        ("long", "t", "m", 0.0),
        ("short", "t", "m", 0.0),
    ]


async def test_two_books_see_each_others_observations(store: ProfileStore) -> None:
    first, second = ProfileBook({"smart": 100.0}, store), ProfileBook({"smart": 100.0}, store)
    arm = ("smart", "t", "small")
    first.observe_call(arm, 50.0, ok=True, latency_s=0.2, cost_usd=0.001, answer_tokens=10, refused=True)
    second.observe_call(arm, 50.0, ok=False, latency_s=0.0, cost_usd=0.0, answer_tokens=0)
    second.observe_quality(arm, 50.0, 1.0)
    await first.sync(50.0)
    await second.sync(50.0)
    await first.sync(50.0)
    for book in (first, second):
        profile = book.profile(arm, 50.0)
        assert (profile.calls, profile.errors, profile.feedback) == pytest.approx((2.0, 1.0, 1.0))
        assert profile.refusal_rate == pytest.approx(1.0)
