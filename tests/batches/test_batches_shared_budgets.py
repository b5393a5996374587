"""A batch's budget reservation in the budgets shared through Redis (limits.backend: redis): two gateways on one
database and one real Redis see each other's batches, so a hard cap holds across them, and a restart takes nothing
back beyond what Redis already holds."""

from __future__ import annotations

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb

from gateway.records.governance import BudgetScope
from tests.admin.helpers import Admin, reason_of
from tests.batches.harness import ITEM_COST, Harness, S
from tests.server.fixtures import AUTH
from tests.server.process import free_port
from tests.store.redis import RedisServer


def shared(redis_server: RedisServer) -> str:
    return f"state: {{redis_url: '{redis_server.url}'}}\nlimits: {{backend: redis}}\n"


def reserved_in_redis(redis_server: RedisServer) -> list[float]:
    """Every budget account's `reserved` counter in Redis."""
    client = redis_server.client()
    try:
        return [float(client.hget(k, "reserved") or 0) for k in client.scan_iter("*}:b:*")]
    finally:
        client.close()


async def test_a_hard_cap_holds_across_two_gateways_and_a_restart(
    openai: Harness, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = shared(redis_server)
    await openai.start(extra=extra)
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    secret, info = await admin.key(team="shared")
    first = await openai.submit(key=secret, count=3)
    # The cap leaves room for the first batch and half of another of its size: a second one of three items passes
    # it, one of one item does not.
    cap = first.estimate_usd * 1.5
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="key", subject=info.id, period="day", hard_usd=cap)),
        metadata=AUTH,
    )
    # The first batch was submitted before the budget existed: it reserved nothing. A restart's round holds its
    # pending items without a cap check, once, in Redis.
    await openai.stop()
    await openai.start(extra=extra)
    await openai.rounds(1)
    other = await Harness(openai.tmp_path, openai.fake, monkeypatch).start(extra=extra)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await other.submit(key=secret, count=3)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert reason_of(refused.value) == "BUDGET_EXCEEDED"
        assert f"${first.estimate_usd:.4f} in flight" in (refused.value.details() or "")

        small = await other.submit(key=secret, count=1)
        # Both batches held once each, whatever the restarts and rounds: restart the first gateway again.
        await openai.stop()
        await openai.start(extra=extra)
        await openai.rounds(1)
        assert reserved_in_redis(redis_server) == [pytest.approx(first.estimate_usd + small.estimate_usd)]
        with pytest.raises(grpc.aio.AioRpcError) as again:
            await openai.submit(key=secret, count=1)
        assert reason_of(again.value) == "BUDGET_EXCEEDED"

        # Each item's share settles as it completes, whichever gateway polls it; the ends give back what is left.
        await openai.rounds(5)
        await other.rounds(5)
        assert (await openai.get(first.id)).status == S.BATCH_STATUS_COMPLETED
        assert (await openai.get(small.id)).status == S.BATCH_STATUS_COMPLETED
        assert reserved_in_redis(redis_server) == [pytest.approx(0.0)]
        client = redis_server.client()
        try:
            spent = [float(client.hget(k, "spent") or 0) for k in client.scan_iter("*}:b:key:*")]
        finally:
            client.close()
        assert spent == [pytest.approx(4 * ITEM_COST)]
    finally:
        await other.stop()


@pytest.mark.parametrize(("policy", "admitted"), [("fail_closed", False), ("fail_open", True)])
async def test_a_batch_while_redis_is_out(openai: Harness, policy: str, admitted: bool) -> None:
    """fail_closed refuses the batch as it would a call; fail_open admits it against this process's book, where its
    items settle and its end gives back the rest."""
    port = free_port()  # nothing listens there
    extra = (
        f"state: {{redis_url: 'redis://127.0.0.1:{port}/0'}}\nlimits: {{backend: redis, on_redis_error: {policy}}}\n"
    )
    await openai.start(extra=extra)
    assert openai.channel is not None
    admin = Admin.on(openai.channel)
    secret, info = await admin.key(team="cut-off")
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="key", subject=info.id, period="day", hard_usd=10.0)),
        metadata=AUTH,
    )
    if not admitted:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await openai.submit(key=secret)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert reason_of(refused.value) == "SHARED_STATE_UNAVAILABLE"
        assert openai.fake.created == 0
        return
    submitted = await openai.submit(key=secret)
    assert openai.gateway is not None
    budgets = openai.gateway.tenancy.budgets
    assert budgets.remaining(BudgetScope.KEY, info.id) == pytest.approx(10.0 - submitted.estimate_usd)
    await openai.rounds(5)
    assert (await openai.get(submitted.id)).status == S.BATCH_STATUS_COMPLETED
    assert budgets.remaining(BudgetScope.KEY, info.id) == pytest.approx(10.0 - 3 * ITEM_COST)
