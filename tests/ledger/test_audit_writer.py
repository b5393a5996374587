"""The audit log writer on its own, with a recording write: what goes in one batch, in which order, how a failed
write is retried, what strict commits, flushes and shutdown wait for. test_audit.py and test_durability.py hold the
same through a running gateway and a killed process."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Awaitable

import pytest

from gateway.ledger import audit
from gateway.ledger.audit import AuditLog, AuditSettings
from gateway.records.audit import AuditRecord

WITHIN_S = 10.0
"""How long a test waits for something the writer does at once: generous for a loaded machine."""


class Writes:
    """The batches written, in order; the first `failures` writes raise."""

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[list[str]] = []
        self.failures = failures
        self.written = asyncio.Event()

    async def __call__(self, batch: list[AuditRecord]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("the database went away")
        self.batches.append([r.request_id for r in batch])
        self.written.set()


def record(request_id: str) -> AuditRecord:
    return AuditRecord(request_id, time.time())


async def soon(awaitable: Awaitable[object]) -> None:
    await asyncio.wait_for(awaitable, WITHIN_S)


async def test_records_submitted_together_are_written_in_one_batch_in_order() -> None:
    writes = Writes()
    log = AuditLog(writes, AuditSettings(flush_interval_s=0.05))
    log.start()
    for name in ("a", "b", "c"):
        log.submit(record(name))
    assert log.pending == 3
    await soon(writes.written.wait())
    assert writes.batches == [["a", "b", "c"]]
    assert log.pending == 0
    writes.written.clear()
    log.submit(record("d"))  # the writer was idle again: this record wakes it
    await soon(writes.written.wait())
    assert writes.batches == [["a", "b", "c"], ["d"]]
    await log.close()


async def test_records_submitted_while_a_batch_is_written_go_in_the_next_without_another_record() -> None:
    """A record submitted while the writer is busy does not wake it (it is not idle): the writer finds it pending
    when the batch before is written, and writes it without waiting for another record."""
    writes = Writes()
    release = asyncio.Event()

    async def slow_write(batch: list[AuditRecord]) -> None:
        await release.wait()
        await writes(batch)

    log = AuditLog(slow_write, AuditSettings(flush_interval_s=0.01))
    log.start()
    await asyncio.sleep(0.05)  # the writer waits, idle, for a first record
    log.submit(record("a"))
    for _ in range(1000):  # until the writer has taken "a"
        if not log.pending:
            break
        await asyncio.sleep(0.01)
    log.submit(record("b"))
    release.set()
    for _ in range(1000):
        if len(writes.batches) == 2:
            break
        await asyncio.sleep(0.01)
    assert writes.batches == [["a"], ["b"]]
    await soon(log.close())


async def test_a_batch_is_written_in_parts_of_at_most_max_batch_records() -> None:
    writes = Writes()
    log = AuditLog(writes, AuditSettings(flush_interval_s=WITHIN_S, max_batch=2))
    log.start()
    for name in "abcde":
        log.submit(record(name))
    await soon(log.flush())  # cuts the batching wait short
    assert writes.batches == [["a", "b"], ["c", "d"], ["e"]]
    await log.close()


def test_the_default_settings_batch_every_10_ms_up_to_2000_records() -> None:
    assert AuditSettings() == AuditSettings(strict=False, flush_interval_s=0.01, max_batch=2000)
    assert not AuditLog(Writes(), AuditSettings()).strict
    assert AuditLog(Writes(), AuditSettings(strict=True)).strict


async def test_a_flush_with_nothing_pending_returns_without_a_write() -> None:
    writes = Writes()
    log = AuditLog(writes, AuditSettings(flush_interval_s=WITHIN_S))
    log.start()
    await soon(log.flush())
    await log.close()
    assert writes.batches == []


async def test_strict_commits_return_once_written_and_commits_meanwhile_share_the_next_write() -> None:
    gate, writing = asyncio.Event(), asyncio.Event()
    batches: list[list[str]] = []

    async def slow_write(batch: list[AuditRecord]) -> None:
        batches.append([r.request_id for r in batch])
        writing.set()
        await gate.wait()

    log = AuditLog(slow_write, AuditSettings(strict=True, flush_interval_s=WITHIN_S))
    log.start()
    first = asyncio.ensure_future(log.commit(record("a")))
    await soon(writing.wait())
    later = [asyncio.ensure_future(log.commit(record(name))) for name in ("b", "c")]
    await asyncio.sleep(0.01)
    assert not first.done()  # not before its write ends
    gate.set()
    await soon(asyncio.gather(first, *later))
    assert batches == [["a"], ["b", "c"]]
    await log.close()


async def test_a_failed_write_is_retried_with_growing_delays_and_never_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def no_wait(delay: float) -> None:
        delays.append(delay)
        await real_sleep(0)

    writes = Writes(failures=6)
    log = AuditLog(writes, AuditSettings(flush_interval_s=WITHIN_S))
    monkeypatch.setattr(audit.asyncio, "sleep", no_wait)
    log.start()
    log.submit(record("a"))
    await soon(log.flush())
    assert delays == [0.05, 0.2, 1.0, 5.0, 5.0, 5.0]
    assert writes.batches == [["a"]]
    await log.close()


async def test_close_writes_what_is_pending_and_ends_the_writer() -> None:
    writes = Writes()
    log = AuditLog(writes, AuditSettings(flush_interval_s=WITHIN_S))
    log.start()
    log.submit(record("a"))
    log.submit(record("b"))
    await soon(log.close())
    assert writes.batches == [["a", "b"]]


async def test_close_of_a_writer_never_started_returns() -> None:
    await soon(AuditLog(Writes(), AuditSettings()).close())


def test_a_writer_is_named_by_its_host_up_to_40_characters_its_process_and_8_random_hex_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer of each record's (writer, seq): a restarted process, or a second one on the host, gets a name of its
    own, so its sequence is counted apart."""
    monkeypatch.setattr(socket, "gethostname", lambda: "h" * 60)
    first, second = (AuditLog(Writes(), AuditSettings()).writer for _ in range(2))
    assert re.fullmatch(rf"h{{40}}/{os.getpid()}/[0-9a-f]{{8}}", first), first
    assert second != first


async def test_the_writer_task_is_named_audit_writer() -> None:
    """The name task dumps and tracebacks show (asyncio debug mode, py-spy): pinned, so a dump reads the same after
    an upgrade."""
    log = AuditLog(Writes(), AuditSettings())
    log.start()
    assert "audit-writer" in {task.get_name() for task in asyncio.all_tasks()}
    await soon(log.close())


async def test_each_batch_waits_the_flush_interval_for_more_records() -> None:
    writes = Writes()
    log = AuditLog(writes, AuditSettings(flush_interval_s=0.3))
    log.start()
    log.submit(record("a"))
    await asyncio.sleep(0.05)
    log.submit(record("b"))  # within the interval: the same batch
    await soon(writes.written.wait())
    assert writes.batches == [["a", "b"]]
    await log.close()


async def test_each_process_numbers_its_records_from_one_without_a_gap() -> None:
    """(writer, seq) is what the compliance report counts gaps by: a missing number is a lost record."""
    first, second = AuditLog(Writes(), AuditSettings()), AuditLog(Writes(), AuditSettings())
    records = [record(name) for name in ("a", "b", "c")]
    for made in records:
        first.submit(made)
    restarted = record("d")
    second.submit(restarted)
    assert [(r.writer, r.seq) for r in records] == [(first.writer, 1), (first.writer, 2), (first.writer, 3)]
    assert (restarted.writer, restarted.seq) == (second.writer, 1)
    assert first.writer != second.writer
