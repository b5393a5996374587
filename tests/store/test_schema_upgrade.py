"""A database created by an earlier release (tables without the columns added since) is brought up to the current
schema when the gateway opens it, on SQLite and on PostgreSQL, keeping its rows."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import MetaData, Table, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.store.database import open_engine
from gateway.store.tables import ledger, metadata

ADDED_LATER = {
    "ledger": {"cache_hits", "cache_saved_usd"},
    "audit": {"cache", "cache_saved_usd", "api", "writer", "seq", "batch_id", "ttfc_ms", "trace_id"},
}


def earlier_schema() -> MetaData:
    old = MetaData()
    for table in metadata.sorted_tables:
        dropped = ADDED_LATER.get(table.name, set())
        Table(table.name, old, *(c._copy() for c in table.columns if c.name not in dropped))
    return old


async def upgrade(url: str) -> None:
    old = earlier_schema()
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(old.create_all)
        row = {c.name: 1 if c.name in ("requests", "id") else 0 for c in old.tables["ledger"].columns}
        await conn.execute(
            insert(old.tables["ledger"]),
            [
                {
                    **row,
                    "key_id": "k",
                    "team": "t",
                    "model": "m",
                    "served_model": "m",
                    "provider": "p",
                    "route": "",
                    "kind": "chat",
                }
            ],
        )
    await engine.dispose()
    upgraded = await open_engine(url)
    async with upgraded.connect() as conn:
        [(hits, saved, requests)] = (
            await conn.execute(select(ledger.c.cache_hits, ledger.c.cache_saved_usd, ledger.c.requests))
        ).all()
    await upgraded.dispose()
    assert (hits, saved, requests) == (0, 0.0, 1)
    # Opening an up-to-date database again does not try to add what is there.
    await (await open_engine(url)).dispose()


async def test_sqlite_database_of_an_earlier_release_is_upgraded(tmp_path: Path) -> None:
    await upgrade(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")


async def test_postgres_database_of_an_earlier_release_is_upgraded(postgres_url: str) -> None:
    await upgrade(postgres_url)


def test_every_later_column_is_defaulted_or_nullable() -> None:
    for name, columns in ADDED_LATER.items():
        for column in columns:
            c = metadata.tables[name].c[column]
            assert c.nullable or c.server_default is not None, (name, column)
