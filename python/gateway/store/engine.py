"""The store's asyncio engine: a SQLAlchemy Core engine on an asyncio driver (aiosqlite, asyncpg) whose calls run in a
greenlet that awaits the driver, as sqlalchemy.ext.asyncio's engine does.

Not sqlalchemy.ext.asyncio itself: its package imports its ORM session module on the way (41 modules, ~6 MB resident
in every process) for a store that uses only an engine and its connections. What this keeps of its engine: a
connection goes back to the pool even when the task holding it is cancelled, and each result's driver cursor is
closed once the driver has buffered its rows (the asyncio drivers' cursors buffer them; no server-side cursor is used).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, TypeVarTuple, overload

from sqlalchemy import URL, Connection, CursorResult, Dialect, Engine, Executable, create_engine
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_cursor
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.util import greenlet_spawn

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")
_AnyRow = tuple[Any, ...]
# One row's bound values, or several rows' for an executemany.
Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None


class AsyncConnection:
    """One pooled connection, in or out of a transaction (see `AsyncEngine.connect` and `AsyncEngine.begin`)."""

    __slots__ = ("sync_connection",)

    def __init__(self, sync_connection: Connection) -> None:
        self.sync_connection = sync_connection

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    @overload
    async def execute(self, statement: TypedReturnsRows[*_Ts], parameters: Parameters = None) -> CursorResult[*_Ts]: ...

    @overload
    async def execute(self, statement: Executable, parameters: Parameters = None) -> CursorResult[*_AnyRow]: ...

    async def execute(self, statement: Executable, parameters: Parameters = None) -> CursorResult[*_AnyRow]:
        result = await greenlet_spawn(self.sync_connection.execute, statement, parameters)
        cursor = result.cursor
        if isinstance(cursor, AsyncAdapt_dbapi_cursor):
            # The rows are buffered: close the driver's cursor now, while awaiting is possible, not from the sync
            # code that later reads them (sqlalchemy.ext.asyncio does the same since SQLAlchemy 2.0.44).
            await cursor._async_soft_close()
        return result

    async def scalar(self, statement: Executable, parameters: Parameters = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def run_sync(self, fn: Callable[[Connection], _T]) -> _T:
        """Runs SQLAlchemy's synchronous API (schema inspection, create_all) on this connection."""
        return await greenlet_spawn(fn, self.sync_connection)


class AsyncEngine:
    __slots__ = ("sync_engine",)

    def __init__(self, sync_engine: Engine) -> None:
        self.sync_engine = sync_engine

    @property
    def url(self) -> URL:
        return self.sync_engine.url

    @property
    def dialect(self) -> Dialect:
        return self.sync_engine.dialect

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection from the pool, given back on exit: what it did and did not commit is rolled back."""
        connection = await greenlet_spawn(self.sync_engine.connect)
        try:
            yield AsyncConnection(connection)
        finally:
            await _to_completion(greenlet_spawn(connection.close))

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on a normal exit and rolled back on an exception."""
        async with self.connect() as connection:
            transaction = await greenlet_spawn(connection.sync_connection.begin)
            try:
                yield connection
            except BaseException:
                await greenlet_spawn(transaction.rollback)
                raise
            await greenlet_spawn(transaction.commit)

    async def dispose(self) -> None:
        """Closes the pool's connections."""
        await greenlet_spawn(self.sync_engine.dispose)


def create_async_engine(url: str | URL, **options: Any) -> AsyncEngine:
    """An engine for an asyncio driver's URL (`sqlite+aiosqlite://…`, `postgresql+asyncpg://…`); `options` are
    create_engine's."""
    engine = create_engine(url, **options)
    if not engine.dialect.is_async:
        # A synchronous driver would run in the greenlet on the event loop and block it on every query.
        raise ValueError(
            f"state.database_url names the synchronous driver {engine.dialect.driver!r}: use an asyncio driver, "
            "sqlite+aiosqlite:///path or postgresql+asyncpg://user:password@host/db"
        )
    return AsyncEngine(engine)


async def _to_completion(cleanup: Coroutine[Any, Any, None]) -> None:
    """Runs `cleanup` to its end even if the calling task is cancelled meanwhile (then re-raises the cancellation):
    a connection abandoned halfway through its close would never return to the pool."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.done():
                raise
            cancelled = error
    task.result()
    if cancelled is not None:
        raise cancelled
