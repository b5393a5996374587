"""Deferred calls in the state database, on SQLite and PostgreSQL: accepted once per id, taken over by one worker
only when its lease ran out, settled, purged."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.deferred import DONE, FAILED, PENDING, Accepted, DeferredStore


def accepted(request_id: str, at: float = 100.0) -> Accepted:
    return Accepted(request_id, "key_1", at, 30.0, b"\x0a\x01m", "ipv4:10.0.0.1:5000", {"x-app": "search"})


async def test_concurrent_acceptances_share_commits_and_a_taken_id_fails_only_its_own_call(engine: AsyncEngine) -> None:
    store = DeferredStore(engine)
    await store.accept(accepted("taken-id"), "worker-a", 130.0)
    outcomes = await asyncio.gather(
        *(store.accept(accepted(f"call-{n:04}"), "worker-a", 130.0) for n in range(20)),
        store.accept(accepted("taken-id"), "worker-a", 130.0),
        return_exceptions=True,
    )
    assert outcomes[:20] == [None] * 20
    assert isinstance(outcomes[20], IntegrityError)
    row = await store.get("call-0007")
    assert row is not None
    assert (row.state, row.key_id, row.peer, row.metadata, row.request) == (
        PENDING,
        "key_1",
        "ipv4:10.0.0.1:5000",
        {"x-app": "search"},
        b"\x0a\x01m",
    )


async def test_only_calls_whose_lease_ran_out_are_taken_over_and_by_one_worker(engine: AsyncEngine) -> None:
    store = DeferredStore(engine)
    await store.accept(accepted("lapsed-1"), "dead-worker", 130.0)
    await store.accept(accepted("alive-01"), "live-worker", 130.0)
    await store.renew("live-worker", 200.0)
    first, second = await asyncio.gather(
        store.take_over("worker-b", 150.0, 180.0), store.take_over("worker-c", 150.0, 180.0)
    )
    assert sorted(r.request_id for r in [*first, *second]) == ["lapsed-1"]
    assert await store.take_over("worker-d", 170.0, 200.0) == []  # worker b or c holds it until 180


async def test_an_answer_or_an_error_replaces_the_request_and_is_purged_after_its_time(engine: AsyncEngine) -> None:
    store = DeferredStore(engine)
    for request_id in ("answered", "failed-1", "pending1"):
        await store.accept(accepted(request_id), "worker-a", 130.0)
    await store.finish("answered", b"answer", 110.0)
    await store.fail("failed-1", 120.0, "INVALID_ARGUMENT", "UPSTREAM_REJECTED_REQUEST", "bad")
    done, failed = await store.get("answered"), await store.get("failed-1")
    assert done is not None
    assert failed is not None
    assert (done.state, done.request, done.response) == (DONE, None, b"answer")
    assert (failed.state, failed.error_code, failed.error_reason, failed.error_message) == (
        FAILED,
        "INVALID_ARGUMENT",
        "UPSTREAM_REJECTED_REQUEST",
        "bad",
    )
    assert await store.purge(115.0) == 1
    assert await store.get("answered") is None
    assert await store.get("failed-1") is not None
    assert await store.get("pending1") is not None  # never purged while pending
