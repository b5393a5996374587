"""The storage layer on both engines it supports: the embedded SQLite and PostgreSQL (a real server), through the
same code. And two gateways sharing one PostgreSQL database, as several instances do."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import replace

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.records.audit import AuditFilter, AuditRecord, GroupBy, UsageFilter
from gateway.records.classification import Classification
from gateway.records.governance import (
    BodyPolicy,
    Budget,
    BudgetScope,
    Conditions,
    KeyLimits,
    KeyRecord,
    Period,
    Role,
    Team,
)
from gateway.store.governance import GovernanceStore
from gateway.store.ledger import LedgerStore
from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes.proxy import StallingProxy
from tests.server.fixtures import AUTH, SIMULATED_CONFIG, StartGateway


async def test_keys_teams_and_budgets_round_trip(engine: AsyncEngine) -> None:
    store = GovernanceStore(engine)
    key = KeyRecord(
        id="key_1",
        prefix="gw-abc",
        secret_hash="0" * 64,
        team="red",
        role=Role.TEAM_ADMIN,
        name="svc",
        models=frozenset({"a", "b"}),
        limits=KeyLimits(60, 1000, 4),
        conditions=Conditions(
            hours=(540, 1080),
            weekdays=frozenset({0, 1}),
            timezone="Europe/Paris",
            networks=(ipaddress.ip_network("10.0.0.0/8"),),
            required_metadata=(("x-app", ("billing",)),),
            max_classification=Classification.INTERNAL,
        ),
        labels={"env": "prod"},
        created_at=1.5,
        expires_at=99.0,
        updated_at=2.5,
    )
    await store.insert_key(key)
    assert await store.get_key("key_1") == key
    changed = replace(key, revoked_at=3.0, updated_at=3.0)
    await store.replace_key(changed)
    assert await store.list_keys("red") == [changed]
    assert await store.list_keys(updated_since=2.9) == [changed]
    assert await store.list_keys(updated_since=3.1) == []
    team = Team("red", BodyPolicy.REDACTED, 7, {"cost-centre": "42"}, 1.0, 1.0)
    await store.save_team(team)
    await store.save_team(replace(team, retention_days=9, updated_at=2.0))
    assert [t.retention_days for t in await store.list_teams()] == [9]
    budget = Budget(BudgetScope.TEAM, "red", Period.MONTH, 10.0, 8.0, "cheap", 1.0)
    await store.save_budget(budget)
    await store.save_budget(replace(budget, hard_usd=12.0))
    assert await store.list_budgets() == [replace(budget, hard_usd=12.0)]
    await store.delete_budget(BudgetScope.TEAM, "red", Period.MONTH)
    assert await store.list_budgets() == []


async def test_ledger_usage_and_audit_queries(engine: AsyncEngine) -> None:
    ledger = LedgerStore(engine)
    now = time.time()
    records = [
        AuditRecord(
            f"r{i}",
            now - i,
            key_id=f"key_{i % 2}",
            team="red" if i % 2 else "blue",
            model="m",
            served_model="m",
            provider="p",
            prompt_tokens=10,
            completion_tokens=5,
            cached_tokens=1,
            cost_usd=0.25,
            attempts=[{"model": "m", "outcome": "ok"}],
        )
        for i in range(10)
    ]
    records.append(AuditRecord("denied", now, key_id="key_0", team="blue", status="PERMISSION_DENIED"))
    await ledger.write(records, with_audit=True)
    rows = await ledger.usage(GroupBy.TEAM, UsageFilter(now - 100, now + 1))
    assert sorted((r.group, r.requests, r.prompt_tokens, r.cached_tokens, r.cost_usd) for r in rows) == [
        ("blue", 5, 50, 5, 1.25),
        ("red", 5, 50, 5, 1.25),
    ]
    assert await ledger.spend(UsageFilter(now - 100, now + 1, team="red")) == pytest.approx(1.25)
    assert await ledger.spend(UsageFilter(now - 100, now + 1, key_id="key_0")) == pytest.approx(1.25)
    denied = await ledger.query_audit(AuditFilter(status="PERMISSION_DENIED"))
    assert [r.request_id for r in denied] == ["denied"]
    exported = [r.request_id async for r in ledger.export_audit(AuditFilter(team="red"))]
    assert exported == ["r9", "r7", "r5", "r3", "r1"]
    assert await ledger.purge_audit(now - 4.5) == 5
    assert len(await ledger.query_audit(AuditFilter(limit=100))) == 6
    ledger.close()


async def test_a_large_batch_and_a_failed_one_leave_the_ledger_consistent(engine: AsyncEngine) -> None:
    """A batch larger than one statement takes (multi-row INSERTs on SQLite) lands whole; a batch the database
    refuses (a duplicate request id) commits nothing and the next batch is written on a fresh connection."""
    ledger = LedgerStore(engine)
    now = time.time()

    def record(request_id: str, team: str = "blue") -> AuditRecord:
        return AuditRecord(
            request_id, now, key_id="k", team=team, model="m", served_model="m", provider="p", prompt_tokens=3,
            completion_tokens=2, cost_usd=0.5, guardrails=[{"type": "pii", "count": 1}],
        )  # fmt: skip

    await ledger.write([record(f"big{i}") for i in range(1000)], with_audit=True)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await ledger.write([record("fresh", team="red"), record("big7", team="red")], with_audit=True)
    await ledger.write([record("after", team="red")], with_audit=True)
    rows = await ledger.usage(GroupBy.TEAM, UsageFilter(now - 1, now + 1))
    assert sorted((r.group, r.requests, r.cost_usd) for r in rows) == [("blue", 1000, 500.0), ("red", 1, 0.5)]
    audited = await ledger.query_audit(AuditFilter(team="red", limit=10))
    assert [r.request_id for r in audited] == ["after"]
    assert audited[0].guardrails == [{"type": "pii", "count": 1}]
    assert len(await ledger.query_audit(AuditFilter(limit=2000))) == 1001
    ledger.close()


async def test_two_gateways_share_keys_budgets_and_audit_through_postgres(
    start_gateway: StartGateway, postgres_url: str
) -> None:
    config = SIMULATED_CONFIG + f"state: {{database_url: '{postgres_url}', sync_interval_s: 0.2}}\n"
    first, one_channel = await start_gateway(config)
    second, two_channel = await start_gateway(config)
    one, two = Admin.on(one_channel), Admin.on(two_channel)
    secret, info = await one.key()
    deadline = time.monotonic() + 5
    while True:
        try:
            response = await two.gateway.Chat(chat_request(), metadata=bearer(secret))
            break
        except grpc.aio.AioRpcError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    await second.audit.flush()
    [record] = (await one.admin.QueryAudit(apb.QueryAuditRequest(request_id=response.id), metadata=AUTH)).records
    assert record.key_id == info.id
    await one.admin.RevokeKey(apb.RevokeKeyRequest(key_id=info.id), metadata=AUTH)
    deadline = time.monotonic() + 5
    refused: grpc.aio.AioRpcError | None = None
    while refused is None:  # the other worker reads the revocation on its next sync
        try:
            await two.gateway.Chat(chat_request(), metadata=bearer(secret))
        except grpc.aio.AioRpcError as err:
            refused = err
        else:
            assert time.monotonic() < deadline, "the second worker never refused the revoked key"
            await asyncio.sleep(0.02)
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    await first.audit.flush()


async def test_calls_never_wait_on_a_hung_database(start_gateway: StartGateway, postgres_url: str) -> None:
    """PostgreSQL stays up and keeps its connections, but a proxy holds every byte: keys, budgets and limits are in
    memory and records are written behind the calls, so calls are still served (each within a deadline the hung
    database would never meet), while the records wait and land once the database answers again."""
    database = make_url(postgres_url)
    assert database.port is not None
    async with StallingProxy("127.0.0.1", database.port) as proxy:
        proxied = database.set(port=proxy.port).render_as_string(hide_password=False)
        gateway, channel = await start_gateway(
            SIMULATED_CONFIG + f"state: {{database_url: '{proxied}', sync_interval_s: 0.1}}\n"
        )
        try:
            admin = Admin.on(channel)
            secret, info = await admin.key(budgets=[apb.Budget(period="day", hard_usd=100.0)], rpm=1000, tpm=10**6)
            await admin.gateway.Chat(chat_request(), metadata=bearer(secret))
            await gateway.audit.flush()
            proxy.stall()
            for _ in range(10):
                await admin.gateway.Chat(chat_request(), metadata=bearer(secret), timeout=10)
            stream = admin.gateway.ChatStream(chat_request(), metadata=bearer(secret), timeout=10)
            assert [c async for c in stream][-1].finish_reason
            await asyncio.gather(
                *(admin.gateway.Chat(chat_request(), metadata=bearer(secret), timeout=10) for _ in range(20))
            )
            committed = asyncio.ensure_future(gateway.audit.flush())
            await asyncio.sleep(0)
            assert proxy.held, "nothing reached the database while it hung: the test proved nothing"
            assert not committed.done(), "the records waited for the database; the calls did not"
            proxy.resume()
            await asyncio.wait_for(committed, 30)
            records = await admin.admin.QueryAudit(apb.QueryAuditRequest(key_id=info.id, limit=100), metadata=AUTH)
            assert len(records.records) == 32
        finally:
            proxy.resume()
            await gateway.stop(0)  # while the proxy still runs, so the last writes reach the database
