"""What a call takes on its way in it gives back on every way out (docs/architecture.md, The chain): a key's
concurrency slot, its tokens per minute and its budget reservation, after a provider failure, a stream that fails,
a deadline that passes, a caller who cancels, and a stage after the limits that raises. Each step is admitted only
if the one before it gave everything back: the key allows one call at a time and its cap holds one call's estimate,
not two."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb

from gateway.pipeline.stages.cache import CacheAnswers
from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import AUTH, StartGateway

CONFIG = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 8}}
  - {name: sim-slow, type: simulated, simulation: {time_to_first_token_ms: 5000}}
  - {name: sim-broken, type: simulated, simulation: {error_rate: 1.0}}
models:
  - {name: fast, provider: sim, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, max_output_tokens: 100}
  - {name: slow, provider: sim-slow, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, max_output_tokens: 100}
  - {name: broken, provider: sim-broken, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, max_output_tokens: 100}
"""
ESTIMATE_USD = 100 * 2.0 / 1e6
"""At least a call's estimate (its 100 answer tokens; the short prompt adds a few millionths)."""
CAP_USD = 1.5 * ESTIMATE_USD
"""Room for one reservation, never two."""
TPM = 150
"""Room for one call's tokens (prompt and 100 answer tokens), never two."""


async def records_of(gateway: Gateway, admin: Admin, key_id: str, count: int) -> list[apb.AuditRecord]:
    """The key's audit records once there are `count`: a record is written after every other stage has exited."""
    deadline = time.monotonic() + 15
    while True:
        await gateway.audit.flush()
        found = await admin.admin.QueryAudit(apb.QueryAuditRequest(key_id=key_id), metadata=AUTH)
        if len(found.records) >= count:
            return list(found.records)
        assert time.monotonic() < deadline, f"{len(found.records)} of {count} records written"
        await asyncio.sleep(0.05)


async def test_every_way_out_gives_back_the_slot_the_tokens_and_the_reservation(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, channel = await start_gateway(CONFIG)
    admin = Admin.on(channel)
    secret, info = await admin.key(team="alpha", max_concurrent=1, tpm=TPM)
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope="key", subject=info.id, period="day", hard_usd=CAP_USD)),
        metadata=AUTH,
    )
    key = bearer(secret)

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await admin.gateway.Chat(chat_request("broken"), metadata=key)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE

    with pytest.raises(grpc.aio.AioRpcError) as failed:
        async for _ in admin.gateway.ChatStream(chat_request("broken"), metadata=key):
            pass
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE

    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await admin.gateway.Chat(chat_request("slow"), metadata=key, timeout=0.3)
    assert gone.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await records_of(gateway, admin, info.id, 3)  # the server side of the call has ended too

    call = admin.gateway.Chat(chat_request("slow"), metadata=key)
    await asyncio.sleep(0.3)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await records_of(gateway, admin, info.id, 4)

    def bug(self: CacheAnswers, call: object) -> None:
        raise RuntimeError("a bug in a stage after the limits")

    with monkeypatch.context() as patched:
        patched.setattr(CacheAnswers, "enter", bug)
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await admin.gateway.Chat(chat_request("fast"), metadata=key)
    assert broken.value.code() is grpc.StatusCode.INTERNAL

    served = await admin.gateway.Chat(chat_request("fast"), metadata=key)
    assert served.usage.completion_tokens > 0
    records = await records_of(gateway, admin, info.id, 6)
    assert sorted(r.status for r in records) == sorted(
        ["UNAVAILABLE", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "INTERNAL", "OK"]
    )


@pytest.mark.parametrize(
    ("spec", "capped", "reason"),
    [
        ({"max_concurrent": 1}, False, "KEY_CONCURRENCY_LIMITED"),
        ({"tpm": TPM}, False, "KEY_RATE_LIMITED"),
        ({}, True, "BUDGET_EXCEEDED"),
    ],
)
async def test_a_slot_tokens_or_a_reservation_kept_would_refuse_the_next_call(
    start_gateway: StartGateway, spec: dict[str, int], capped: bool, reason: str
) -> None:
    """The test above proves something only if what one call holds refuses the next: here a call holds it."""
    _, channel = await start_gateway(CONFIG)
    admin = Admin.on(channel)
    secret, info = await admin.key(team="alpha", **spec)
    if capped:
        await admin.admin.SetBudget(
            apb.SetBudgetRequest(budget=apb.Budget(scope="key", subject=info.id, period="day", hard_usd=CAP_USD)),
            metadata=AUTH,
        )
    held = asyncio.ensure_future(admin.gateway.Chat(chat_request("slow"), metadata=bearer(secret), timeout=10))
    try:
        await asyncio.sleep(0.5)
        assert not held.done()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await admin.gateway.Chat(chat_request("fast"), metadata=bearer(secret))
        assert (refused.value.code(), reason_of(refused.value)) == (grpc.StatusCode.RESOURCE_EXHAUSTED, reason)
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
