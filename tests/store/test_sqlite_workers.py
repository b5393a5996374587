"""Several processes writing one SQLite file (the workers of `gateway serve --workers N` on one machine): every
batch commits on its first try, however the writers collide, while readers and a purge run beside them."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

from gateway.store.database import default_url, open_engine

WRITERS = 4
BATCHES = 150
RECORDS = 20
WRITER = """
import asyncio, sys, time
from gateway.records.audit import AuditFilter, AuditRecord
from gateway.store.database import open_engine
from gateway.store.ledger import LedgerStore

async def main(url: str, name: str, batches: int, size: int) -> None:
    engine = await open_engine(url)
    ledger = LedgerStore(engine)
    failed = 0
    for batch in range(batches):
        records = [
            AuditRecord(f"{name}-{batch}-{i}", time.time(), key_id=name, team="t", model="m", served_model="m",
                        provider="p", prompt_tokens=3, completion_tokens=5, cost_usd=0.001, response_body="x" * 200)
            for i in range(size)
        ]
        try:
            await ledger.write(records, with_audit=True)
        except Exception as err:
            failed += 1
            print(f"write failed: {err!r}", file=sys.stderr)
        if batch % 10 == 0:  # a reader and a purge among the writes, as a worker's Admin calls and retention do
            await ledger.query_audit(AuditFilter(key_id=name, limit=5))
            await ledger.purge_audit(0.0)
    ledger.close()
    await engine.dispose()
    print(failed)

asyncio.run(main(*sys.argv[1:3], int(sys.argv[3]), int(sys.argv[4])))
"""


async def _create_schema(url: str) -> None:
    engine = await open_engine(url)
    await engine.dispose()


def test_concurrent_writers_never_fail_a_batch(tmp_path: Path) -> None:
    url = default_url(tmp_path)
    asyncio.run(_create_schema(url))  # the schema exists before the writers start, as the supervisor makes it
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{i}", str(BATCHES), str(RECORDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(WRITERS)
    ]
    outputs = [w.communicate(timeout=120) for w in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err
        assert out.strip() == "0", err  # no batch failed, not even once before a retry
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        audited = db.execute("SELECT key_id, COUNT(*) FROM audit GROUP BY key_id").fetchall()
        billed = db.execute("SELECT SUM(requests) FROM ledger").fetchone()[0]
    assert sorted(audited) == [(f"w{i}", BATCHES * RECORDS) for i in range(WRITERS)]
    assert billed == WRITERS * BATCHES * RECORDS
