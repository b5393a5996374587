"""The Batches service through gRPC, against fakes of the providers' batch APIs: each provider's whole lifecycle,
partial failures, results out of order, expiry, cancelling, a provider's refusal, restarts mid-batch (no batch created
twice, every item billed once), budgets, and the refusals with their statuses.

The poller's rounds are driven by the tests (`rounds`), with a poll interval too long to fire on its own, so each
round is one poll of the fake and nothing depends on the machine's speed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import gateway_pb2 as pb

from gateway.records.audit import GroupBy, UsageFilter
from gateway.records.governance import BudgetScope
from tests.admin.helpers import Admin, bearer, reason_of
from tests.batches.harness import ITEM_COST, Harness, S, requests
from tests.fakes.batch_apis import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    FakeAnthropicBatches,
    FakeGeminiBatches,
    FakeOpenAIBatches,
)
from tests.server.fixtures import AUTH


async def test_lifecycle_partial_failure_and_results_out_of_order(harness: Harness) -> None:
    fake = harness.fake
    fake.fail_items = {2: 500}
    fake.reverse = True
    submitted = await harness.submit()
    assert submitted.status == S.BATCH_STATUS_QUEUED
    assert submitted.counts.total == submitted.counts.pending == 3
    assert submitted.metadata == {"job": "nightly"}
    assert submitted.estimate_usd > 0
    seen = []
    for _ in range(8):
        await harness.rounds(1)
        batch = await harness.get(submitted.id)
        seen.append(batch.status)
        if batch.status == S.BATCH_STATUS_COMPLETED:
            break
    assert S.BATCH_STATUS_IN_PROGRESS in seen or S.BATCH_STATUS_VALIDATING in seen
    assert seen[-1] == S.BATCH_STATUS_COMPLETED
    assert fake.created == 1
    assert batch.counts.succeeded == 2
    assert batch.counts.failed == 1
    assert batch.counts.pending == 0
    assert batch.cost_usd == pytest.approx(2 * ITEM_COST)
    assert batch.provider == "batchp"
    assert batch.HasField("ended_at")
    results = await harness.results(submitted.id)
    assert set(results) == {"q-0", "q-1", "q-2"}
    for custom_id in ("q-0", "q-1"):
        answer = results[custom_id].answer
        assert answer.message.content == f"answer to item-{custom_id[-1]}"
        assert answer.usage.prompt_tokens == PROMPT_TOKENS
        assert answer.usage.completion_tokens == COMPLETION_TOKENS
        assert answer.usage.cost_usd == pytest.approx(ITEM_COST)
    assert results["q-2"].error.code in ("UNAVAILABLE", "INTERNAL")
    records = await harness.audit(submitted.id)
    assert sorted(r.request_id for r in records) == sorted(r.request_id for r in results.values())
    assert {r.kind for r in records} == {"batch"}
    assert sum(r.cost_usd for r in records) == pytest.approx(2 * ITEM_COST)
    assert harness.channel is not None
    queried = await Admin.on(harness.channel).admin.QueryAudit(
        apb.QueryAuditRequest(request_id=results["q-0"].request_id), metadata=AUTH
    )
    assert [(r.batch_id, r.kind, r.status) for r in queried.records] == [(submitted.id, "batch", "OK")]


async def test_expired_batch_fails_unanswered_items(harness: Harness) -> None:
    fake = harness.fake
    if isinstance(fake, FakeOpenAIBatches):
        fake.lifecycle = ["validating", "in_progress", "expired"]
    elif isinstance(fake, FakeGeminiBatches):
        fake.lifecycle = ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING", "BATCH_STATE_EXPIRED"]
    fake.unanswered = {0, 1, 2} if isinstance(fake, FakeAnthropicBatches) else {0}
    submitted = await harness.submit()
    await harness.rounds(4)
    batch = await harness.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_EXPIRED
    results = await harness.results(submitted.id)
    assert results["q-0"].error.code == "DEADLINE_EXCEEDED"
    assert results["q-0"].error.reason == "BATCH_EXPIRED"


async def test_cancel_reaches_the_provider(harness: Harness) -> None:
    harness.fake.lifecycle = harness.fake.lifecycle[:1] + [harness.fake.lifecycle[1]] * 5
    harness.fake.unanswered = {0, 1, 2}
    submitted = await harness.submit()
    await harness.rounds(1)
    cancelling = await harness.stub.CancelBatch(bpb.CancelBatchRequest(batch_id=submitted.id), metadata=AUTH)
    assert cancelling.status == S.BATCH_STATUS_CANCELLING
    await harness.rounds(3)
    batch = await harness.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_CANCELLED
    assert batch.counts.failed == 3
    assert ("POST", next(p for m, p in harness.fake.requests if p.endswith("cancel"))) in harness.fake.requests
    results = await harness.results(submitted.id)
    assert {r.error.code for r in results.values()} == {"CANCELLED"}
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.stub.CancelBatch(bpb.CancelBatchRequest(batch_id=submitted.id), metadata=AUTH)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused.value) == "BATCH_ENDED"


async def test_cancel_before_the_provider_has_it(openai: Harness) -> None:
    await openai.start()
    submitted = await openai.submit()
    await openai.stub.CancelBatch(bpb.CancelBatchRequest(batch_id=submitted.id), metadata=AUTH)
    await openai.rounds(1)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_CANCELLED
    assert openai.fake.created == 0


async def test_a_batch_the_provider_refuses_fails_whole(openai: Harness) -> None:
    await openai.start()
    openai.fake.refuse_create = 400
    submitted = await openai.submit()
    await openai.rounds(1)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_FAILED
    assert "refused by the test" in batch.error
    assert batch.counts.failed == 3
    assert batch.cost_usd == 0


async def test_restart_while_creating_finds_the_batch_instead_of_creating_another(openai: Harness) -> None:
    """A crash after the provider made the batch but before the gateway recorded its id: the restarted gateway finds
    it by the gateway's id in its metadata."""
    await openai.start()
    submitted = await openai.submit()
    assert openai.gateway is not None
    assert openai.gateway.batches is not None
    store = openai.gateway.batches.poller._store
    real_update = store.update

    async def crash_on_submitted(batch_id: str, **values: Any) -> None:
        if values.get("step") == "submitted":
            raise ConnectionError("the process died here")
        await real_update(batch_id, **values)

    store.update = crash_on_submitted  # type: ignore[method-assign]
    await openai.rounds(1)
    assert openai.fake.created == 1
    await openai.stop()
    await openai.start()
    await openai.rounds(6)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    assert openai.fake.created == 1
    assert batch.counts.succeeded == 3


async def test_restart_after_results_bills_each_item_once(openai: Harness) -> None:
    """A crash after the items' outcomes and audit records were committed, before they were marked billed."""
    await openai.start()
    submitted = await openai.submit()
    assert openai.gateway is not None
    assert openai.gateway.batches is not None
    store = openai.gateway.batches.poller._store

    async def crash(*_: Any) -> None:
        raise ConnectionError("the process died here")

    store.mark_billed = crash  # type: ignore[method-assign]
    await openai.rounds(5)
    await openai.stop()
    await openai.start()
    await openai.rounds(2)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    records = await openai.audit(submitted.id)
    assert len(records) == 3
    assert sum(r.cost_usd for r in records) == pytest.approx(3 * ITEM_COST)
    assert openai.fake.created == 1


async def test_two_pollers_never_work_on_one_batch(openai: Harness) -> None:
    """Two processes' pollers on one database: the lease gives each batch to one of them."""
    await openai.start()
    submitted = await openai.submit()
    assert openai.gateway is not None
    assert openai.gateway.batches is not None
    poller = openai.gateway.batches.poller
    store = poller._store
    first = await store.claim("worker-a", 1000.0, 60.0, 10)
    second = await store.claim("worker-b", 1000.0, 60.0, 10)
    assert [j.id for j in first] == [submitted.id]
    assert second == []
    assert [j.id for j in await store.claim("worker-b", 1061.0, 60.0, 10)] == [submitted.id]


async def test_two_gateways_on_one_database_create_the_batch_once(openai: Harness) -> None:
    """Two processes' pollers (as --workers run them) racing on one SQLite database: one creates the batch, and its
    items are billed once."""
    await openai.start()
    submitted = await openai.submit()
    patch = pytest.MonkeyPatch()
    other = await Harness(openai.tmp_path, openai.fake, patch).start()
    try:
        assert openai.gateway is not None
        assert other.gateway is not None
        for _ in range(5):
            await asyncio.gather(openai.rounds(1), other.rounds(1))
        assert openai.fake.created == 1
        assert (await openai.get(submitted.id)).status == S.BATCH_STATUS_COMPLETED
        await other.gateway.audit.flush()
        records = await openai.audit(submitted.id)
        assert len(records) == 3
    finally:
        await other.stop()
        patch.undo()


async def test_failed_items_go_again_through_the_route(openai: Harness) -> None:
    """batches.fallback individual: an item the provider failed is sent again as an ordinary call through the route,
    whose next target (a simulated model) answers it."""
    await openai.start(fallback="individual")
    openai.fake.fail_items = {0: 500}
    submitted = await openai.submit(model="with-fallback")
    assert submitted.served_model == "batchy"
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    assert batch.counts.succeeded == 3
    assert batch.counts.retried == 1
    results = await openai.results(submitted.id)
    assert results["q-0"].answer.provider == "sim"
    records = await openai.audit(submitted.id)
    assert sorted(r.kind for r in records) == ["batch", "batch", "chat"]


async def test_results_follow_until_the_batch_ends(openai: Harness) -> None:
    await openai.start()
    submitted = await openai.submit()
    following = asyncio.ensure_future(openai.results(submitted.id, follow=True))
    await openai.rounds(5)
    results = await asyncio.wait_for(following, 10)
    assert set(results) == {"q-0", "q-1", "q-2"}


async def test_budget_refuses_a_batch_whose_estimate_passes_the_cap(openai: Harness) -> None:
    await openai.start()
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    secret, _ = await admin.key(team="frugal")
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="team", subject="frugal", period="day", hard_usd=0.0001)),
        metadata=AUTH,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await openai.submit(key=secret)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(refused.value) == "BUDGET_EXCEEDED"
    assert "$0.00" in (refused.value.details() or "")
    assert openai.fake.created == 0


async def test_refusals(openai: Harness) -> None:
    await openai.start()
    stub = openai.stub

    async def only_items() -> AsyncIterator[bpb.SubmitBatchRequest]:
        yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id="a", chat=pb.ChatRequest()))

    async def twice() -> AsyncIterator[bpb.SubmitBatchRequest]:
        yield bpb.SubmitBatchRequest(header=bpb.BatchHeader(model="batchy"))
        for _ in range(2):
            chat = pb.ChatRequest(messages=[pb.Message(role="user", content="hi")])
            yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id="same", chat=chat))

    cases = [
        (only_items(), grpc.StatusCode.INVALID_ARGUMENT, "MISSING_HEADER"),
        (twice(), grpc.StatusCode.INVALID_ARGUMENT, "DUPLICATE_CUSTOM_ID"),
        (requests("fast", 1), grpc.StatusCode.FAILED_PRECONDITION, "BATCH_UNSUPPORTED"),
        (requests("nope", 1), grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_MODEL"),
        (requests("batchy", 1, model="fast"), grpc.StatusCode.INVALID_ARGUMENT, "MODEL_MISMATCH"),
    ]
    for stream, code, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SubmitBatch(stream, metadata=AUTH)
        assert refused.value.code() is code, reason
        assert reason_of(refused.value) == reason
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetBatch(bpb.GetBatchRequest(batch_id="batch_nope"), metadata=AUTH)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.GetBatch(bpb.GetBatchRequest(batch_id="batch_nope"))
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_another_keys_batch_is_not_found_and_lists_are_narrowed(openai: Harness) -> None:
    await openai.start()
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    mine = await openai.submit()
    secret, _ = await admin.key(team="others")
    theirs = await openai.submit(key=secret)
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await openai.stub.GetBatch(bpb.GetBatchRequest(batch_id=mine.id), metadata=bearer(secret))
    assert hidden.value.code() is grpc.StatusCode.NOT_FOUND
    listed = await openai.stub.ListBatches(bpb.ListBatchesRequest(), metadata=bearer(secret))
    assert [b.id for b in listed.batches] == [theirs.id]
    everything = await openai.stub.ListBatches(bpb.ListBatchesRequest(limit=1), metadata=AUTH)
    assert [b.id for b in everything.batches] == [theirs.id]
    assert everything.has_more
    rest = await openai.stub.ListBatches(bpb.ListBatchesRequest(after=theirs.id), metadata=AUTH)
    assert [b.id for b in rest.batches] == [mine.id]


async def test_on_postgres_a_restart_resumes_and_bills_once(openai: Harness, postgres_url: str) -> None:
    """The same state machine, leases and billing on PostgreSQL (several instances share one database)."""
    state = f"state: {{database_url: '{postgres_url}'}}"
    await openai.start(extra=state)
    openai.fake.reverse = True
    submitted = await openai.submit()
    await openai.rounds(2)
    await openai.stop()
    await openai.start(extra=state)
    assert openai.gateway is not None
    assert openai.gateway.batches is not None
    store = openai.gateway.batches.poller._store
    assert await store.claim("worker-a", 1e12, 60.0, 10) != []
    assert await store.claim("worker-b", 1e12, 60.0, 10) == []
    await store.release(submitted.id, "worker-a")
    await openai.rounds(4)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    assert openai.fake.created == 1
    records = await openai.audit(submitted.id)
    assert len(records) == 3
    assert sum(r.cost_usd for r in records) == pytest.approx(3 * ITEM_COST)


GUARDRAILS = """
guardrails:
  input:
    content: {blocked_keywords: [project orion]}
  output:
    confidential: {strings: [item-2]}
"""


async def test_guardrails_on_submit_and_on_each_result(openai: Harness) -> None:
    await openai.start(extra=GUARDRAILS)

    async def blocked() -> AsyncIterator[bpb.SubmitBatchRequest]:
        yield bpb.SubmitBatchRequest(header=bpb.BatchHeader(model="batchy"))
        for i, text in enumerate(["fine", "tell me about Project Orion"]):
            chat = pb.ChatRequest(messages=[pb.Message(role="user", content=text)])
            yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id=f"g-{i}", chat=chat))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await openai.stub.SubmitBatch(blocked(), metadata=AUTH)
    assert "item 'g-1'" in (refused.value.details() or "")
    assert openai.fake.created == 0
    submitted = await openai.submit()
    await openai.rounds(5)
    results = await openai.results(submitted.id)
    assert "item-2" not in results["q-2"].answer.message.content
    assert results["q-0"].answer.message.content == "answer to item-0"
    records = {r.request_id: r for r in await openai.audit(submitted.id)}
    assert records[results["q-2"].request_id].guardrails


async def test_failed_items_go_again_in_a_new_batch_on_the_next_target(
    openai: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """batches.fallback batch: the items the first provider failed go together in a new batch on the route's next
    target with a batch API (another provider's), at its batch prices; the others keep their first answers."""
    second = await FakeAnthropicBatches().start()
    monkeypatch.setenv(second.key_env, second.api_key)
    try:
        await openai.start(second=second, fallback="batch")
        openai.fake.fail_items = {0: 500, 2: 503}
        submitted = await openai.submit(model="two-batch")
        await openai.rounds(4)
        moved = await openai.get(submitted.id)
        assert moved.provider == "batchp2"
        assert moved.counts.succeeded == 1
        assert moved.counts.pending == 2
        await openai.rounds(4)
        batch = await openai.get(submitted.id)
        assert batch.status == S.BATCH_STATUS_COMPLETED
        assert (batch.counts.succeeded, batch.counts.retried) == (3, 2)
        assert openai.fake.created == 1
        assert second.created == 1
        assert [custom_id for custom_id, _ in next(iter(second.batches.values())).items] == ["item-0", "item-2"]
        results = await openai.results(submitted.id)
        assert {r.custom_id: r.answer.provider for r in results.values()} == {
            "q-0": "batchp2",
            "q-1": "batchp",
            "q-2": "batchp2",
        }
        records = await openai.audit(submitted.id)
        assert len(records) == 3
        assert sum(r.cost_usd for r in records) == pytest.approx(3 * ITEM_COST)
    finally:
        await second.close()


async def test_without_a_next_target_the_failure_stands(openai: Harness) -> None:
    await openai.start(fallback="batch")
    openai.fake.fail_items = {1: 500}
    submitted = await openai.submit()
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    assert (batch.counts.succeeded, batch.counts.failed, batch.counts.retried) == (2, 1, 0)
    assert openai.fake.created == 1


async def test_a_batch_finished_elsewhere_gives_back_its_reservation_here(openai: Harness) -> None:
    """The submitting process holds the batch's reservation; when another process's poller ends the batch, the next
    round here gives it back, so the key's budget is not held forever."""
    await openai.start()
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    secret, info = await admin.key(team="held")
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="key", subject=info.id, period="day", hard_usd=10.0)),
        metadata=AUTH,
    )
    submitted = await openai.submit(key=secret)
    assert openai.gateway is not None
    budgets = openai.gateway.tenancy.budgets
    key = openai.gateway.tenancy.ring.get(info.id)
    assert key is not None
    assert budgets.remaining(BudgetScope.KEY, info.id) == pytest.approx(10.0 - submitted.estimate_usd)
    patch = pytest.MonkeyPatch()
    other = await Harness(openai.tmp_path, openai.fake, patch).start()
    try:
        await other.rounds(5)
        assert (await openai.get(submitted.id)).status == S.BATCH_STATUS_COMPLETED
        await openai.rounds(1)
        assert budgets.remaining(BudgetScope.KEY, info.id) == pytest.approx(10.0)
    finally:
        await other.stop()
        patch.undo()


async def test_a_large_batch_streams_its_results_in_pages(openai: Harness) -> None:
    """1,500 items: the results file spans many reads (lines cut anywhere between them) and many settle pages; each
    item is answered and billed once."""
    await openai.start()
    openai.fake.reverse = True
    count = 1500
    submitted = await openai.submit(count=count)
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED
    assert batch.counts.succeeded == count
    assert batch.cost_usd == pytest.approx(count * ITEM_COST)
    results = await openai.results(submitted.id)
    assert len(results) == count
    assert results["q-1234"].answer.message.content == "answer to item-1234"
    assert openai.gateway is not None
    await openai.gateway.audit.flush()
    usage = await openai.gateway.ledger.usage(GroupBy.MODEL, UsageFilter(since=0, until=time.time() + 60))
    assert [(row.group, row.requests) for row in usage] == [("batchy", count)]
    assert usage[0].cost_usd == pytest.approx(count * ITEM_COST)


async def test_a_long_step_keeps_its_lease(openai: Harness) -> None:
    """While a step outlasts the lease (a slow upload), the poller renews it: another process cannot take the batch
    over and upload or create it a second time."""
    await openai.start(lease="0.6")
    submitted = await openai.submit()
    assert openai.gateway is not None
    assert openai.gateway.batches is not None
    store = openai.gateway.batches.poller._store
    openai.fake.slow_s = 2.0
    round_under_way = asyncio.ensure_future(openai.rounds(1))
    await asyncio.sleep(1.4)
    assert await store.claim("another-process", time.time(), 0.6, 10) == []
    await round_under_way
    assert openai.fake.created == 1
    assert (await openai.get(submitted.id)).status != S.BATCH_STATUS_QUEUED


async def test_the_keys_conditions_apply_on_submission(openai: Harness) -> None:
    await openai.start()
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    secret, _ = await admin.key(team="fenced", conditions=apb.Conditions(networks=["10.0.0.0/8"]))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await openai.submit(key=secret)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused.value) == "NETWORK_NOT_ALLOWED"


async def test_a_batch_the_provider_no_longer_has_fails(openai: Harness) -> None:
    await openai.start()
    submitted = await openai.submit()
    await openai.rounds(1)
    openai.fake.batches.clear()  # deleted at the provider (or archived past its retention)
    await openai.rounds(1)
    batch = await openai.get(submitted.id)
    assert batch.status == S.BATCH_STATUS_FAILED
    assert "HTTP 404" in batch.error
    assert batch.counts.failed == 3
