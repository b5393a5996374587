"""The store's asyncio engine (gateway/store/engine.py): transactions, connections given back, drivers refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select

from gateway.store.engine import AsyncEngine, create_async_engine

_metadata = MetaData()
_numbers = Table("numbers", _metadata, Column("n", Integer, primary_key=True))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'engine.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(_metadata.create_all)
    yield engine
    await engine.dispose()


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(_numbers)))


async def test_begin_commits_on_a_normal_exit_and_rolls_back_on_an_exception(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(_numbers), {"n": 1})

    async def abandon() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(_numbers), {"n": 2})
            raise RuntimeError("abandoned")

    with pytest.raises(RuntimeError, match="abandoned"):
        await abandon()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(_numbers.c.n))).scalars().all()
    assert rows == [1]


async def test_a_cancelled_call_rolls_back_and_gives_its_connection_back(engine: AsyncEngine) -> None:
    # A client that gives up on an RPC cancels its task while the call holds a connection in a transaction.
    inside = asyncio.Event()

    async def hold() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(_numbers), {"n": 3})
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool = engine.sync_engine.pool
    assert (pool.checkedout(), pool.checkedin()) == (0, 1)  # type: ignore[attr-defined]
    assert await _count(engine) == 0


async def test_rows_read_after_the_call_are_all_there(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(_numbers), [{"n": n} for n in range(10, 15)])
    async with engine.connect() as conn:
        result = await conn.execute(select(_numbers.c.n).order_by(_numbers.c.n))
    # The driver's cursor was closed once the call returned; the rows were buffered before.
    assert result.scalars().all() == [10, 11, 12, 13, 14]


def test_a_synchronous_driver_is_refused_with_the_urls_to_use(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"synchronous driver 'pysqlite'.*sqlite\+aiosqlite.*postgresql\+asyncpg"):
        create_async_engine(f"sqlite:///{tmp_path / 'sync.db'}")
