"""The places the learned routes' shared state can live, opened for a test: the database (SQLite, PostgreSQL) or
Redis. Store tests parametrize over BACKENDS and wrap what `opened` yields in the store they test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.state.redis import RedisState
from gateway.store.database import open_engine
from tests.store.postgres import fresh_database
from tests.store.redis import RedisServer

BACKENDS = ["sqlite", "postgres", "redis"]


@contextlib.asynccontextmanager
async def opened(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine | RedisState]:
    """`request.param`, one of BACKENDS: an engine on a fresh database, or a client of the session's Redis."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        state = RedisState(server.url, timeout_s=5.0)
        yield state
        await state.close()
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = await fresh_database(request.getfixturevalue("postgres_server"))
    engine = await open_engine(url)
    yield engine
    await engine.dispose()
