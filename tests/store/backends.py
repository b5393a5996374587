"""The places the learned routes' shared state can live, opened for a test: the database (SQLite, PostgreSQL) or
Redis. Store tests parametrize over BACKENDS and wrap what `opened` yields in the store they test."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.state.redis import RedisState
from tests.store.postgres import opened_database
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
    async with opened_database(request, tmp_path) as engine:
        yield engine
