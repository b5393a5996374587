"""Opening the database: an async SQLAlchemy engine on aiosqlite (the embedded default) or asyncpg (PostgreSQL).

SQLAlchemy keeps the SQL dialect-neutral; the only SQLite-specific lines are the pragmas below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.schema import CreateColumn

from gateway.store.tables import metadata

DATABASE_FILE = "gateway.db"
# JSON columns (attempts, guardrail actions, bodies) through orjson: ten times faster than json on the audit writer.
_JSON: dict[str, Any] = {
    "json_serializer": lambda value: orjson.dumps(value).decode(),
    "json_deserializer": orjson.loads,
}


def default_url(state_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{state_dir / DATABASE_FILE}"


async def open_engine(url: str, *, synchronous_full: bool = False) -> AsyncEngine:
    """An engine with the schema created. `synchronous_full` makes SQLite fsync every commit (strict audit mode):
    then a committed record survives a power cut too, not only a crashed process."""
    if url.startswith("sqlite"):
        path = url.partition(":///")[2]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **_JSON)
        _on_sqlite_connect(engine.sync_engine, synchronous_full=synchronous_full)
    else:
        engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True, **_JSON)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(_add_new_columns)
    return engine


def _add_new_columns(conn: Connection) -> None:
    """Columns added to a table after a database was created, added to it (create_all only creates missing tables).
    Every column added after a first release has a server default or is nullable, so the rows already there stay
    valid; the DDL is compiled for the database's dialect."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = CreateColumn(column).compile(dialect=conn.dialect)
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))


_SYNC_DRIVERS = {"sqlite": "sqlite+pysqlite", "postgresql": "postgresql+psycopg"}


def writer_engine(engine: AsyncEngine, *, synchronous_full: bool = False) -> Engine:
    """A synchronous engine on the same database, for the ledger's writer thread: the stdlib sqlite3 driver, or
    psycopg for PostgreSQL (asyncpg has no synchronous API). One connection: batches are written one at a time."""
    url = engine.url.set(drivername=_SYNC_DRIVERS[engine.url.get_backend_name()])
    writer = create_engine(url, pool_size=1, max_overflow=0, **_JSON)
    if url.get_backend_name() == "sqlite":
        _on_sqlite_connect(writer, synchronous_full=synchronous_full)
    return writer


def _on_sqlite_connect(engine: Engine, *, synchronous_full: bool) -> None:
    synchronous = "FULL" if synchronous_full else "NORMAL"

    @event.listens_for(engine, "connect")
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Several gateway processes (--workers) share one file: wait up to 10 s for another's write lock instead of
        # failing at once. Set first, so the journal-mode pragma below waits too. The gateway's write transactions
        # begin with their write (inserts, deletes, updates by key; schema changes run once, before workers start),
        # so SQLite waits for the lock rather than refusing it as a possible deadlock.
        cursor.execute("PRAGMA busy_timeout=10000")
        # WAL lets readers (usage queries, exports) run while the audit writer commits; with synchronous=NORMAL a
        # commit survives the process being killed, and only a power cut can lose the last transactions.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.close()


def dialect_insert(engine: AsyncEngine) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL spell it the same). Each dialect is imported
    by the engine that uses it: PostgreSQL's costs a SQLite gateway 2 MB (19 modules)."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


def postgres_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain libpq DSN (for a connection of its own, e.g. LISTEN/NOTIFY)."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
