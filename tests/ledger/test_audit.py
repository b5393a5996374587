"""The audit log through the Admin API: one record per call, bodies per team policy, export, retention, strict mode
and shutdown."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import grpc
import orjson
import pytest
from google.protobuf import timestamp_pb2
from llmgateway.v1 import admin_pb2 as apb

from gateway.ledger.audit import AuditLog, AuditSettings
from gateway.records.audit import AuditFilter, AuditRecord
from gateway.server.app import Gateway
from gateway.store.database import open_engine
from gateway.store.ledger import LedgerStore
from tests.admin.helpers import Admin, bearer, chat_request
from tests.server.fixtures import AUTH, SIMULATED_CONFIG, TEST_KEY, StartGateway

EMAIL = "jane.doe@example.com"


@pytest.fixture
async def running(start_gateway: StartGateway) -> tuple[Gateway, Admin]:
    gateway, channel = await start_gateway()
    return gateway, Admin.on(channel)


async def records(admin: Admin, **query: object) -> list[apb.AuditRecord]:
    response = await admin.admin.QueryAudit(apb.QueryAuditRequest(**query), metadata=AUTH)  # type: ignore[arg-type]
    return list(response.records)


async def test_every_call_has_one_record_without_the_key(running: tuple[Gateway, Admin]) -> None:
    gateway, admin = running
    secret, info = await admin.key(models=["fast", "broken"])
    ok = await admin.gateway.Chat(chat_request(), metadata=bearer(secret))
    async for _ in admin.gateway.ChatStream(chat_request(), metadata=bearer(secret)):
        pass
    for model, code in (("slow", grpc.StatusCode.PERMISSION_DENIED), ("broken", grpc.StatusCode.UNAVAILABLE)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.gateway.Chat(chat_request(model), metadata=bearer(secret))
        assert caught.value.code() is code
    await gateway.audit.flush()
    found = await records(admin, key_id=info.id)
    assert len(found) == 4
    by_status = {(r.kind, r.model, r.status) for r in found}
    assert by_status == {
        ("chat", "fast", "OK"),
        ("stream", "fast", "OK"),
        ("chat", "slow", "PERMISSION_DENIED"),
        ("chat", "broken", "UNAVAILABLE"),
    }
    [first] = await records(admin, request_id=ok.id)
    assert first.team == "alpha"
    assert first.key_id == info.id
    assert first.peer.startswith("ipv4:127.0.0.1:")
    assert first.served_model == "fast"
    assert first.provider == "sim"
    assert first.prompt_tokens == ok.usage.prompt_tokens
    assert first.completion_tokens == ok.usage.completion_tokens
    assert first.cost_usd == pytest.approx(ok.usage.cost_usd)
    assert [a.outcome for a in first.attempts] == ["ok"]
    assert first.latency_ms > 0
    assert first.request_body_json == ""
    assert first.response_body == ""
    broken = next(r for r in found if r.model == "broken")
    assert broken.reason
    assert broken.attempts
    assert broken.attempts[0].outcome == "error"
    everything = b"".join(r.SerializeToString() for r in found)
    assert secret.encode() not in everything
    assert TEST_KEY.encode() not in everything


@pytest.mark.parametrize(("policy", "stored"), [("redacted", "<EMAIL_ADDRESS_1>"), ("full", EMAIL)])
async def test_bodies_are_stored_per_team_policy(running: tuple[Gateway, Admin], policy: str, stored: str) -> None:
    gateway, admin = running
    await admin.team("care", body_policy=policy)
    secret, _ = await admin.key(team="care")
    response = await admin.gateway.Chat(chat_request(text=f"Mail {EMAIL} the report"), metadata=bearer(secret))
    await gateway.audit.flush()
    [record] = await records(admin, request_id=response.id)
    body = orjson.loads(record.request_body_json)["messages"]
    assert body[0]["role"] == "user"
    assert stored.split("_")[0] in body[0]["content"]
    if policy == "redacted":
        assert EMAIL not in record.request_body_json
        assert EMAIL not in record.response_body
    assert record.response_body


async def test_export_writes_a_time_range_as_json_lines(running: tuple[Gateway, Admin]) -> None:
    gateway, admin = running
    secret, _ = await admin.key()
    started = time.time()
    ids = [(await admin.gateway.Chat(chat_request(), metadata=bearer(secret))).id for _ in range(5)]
    await gateway.audit.flush()
    since = timestamp_pb2.Timestamp()
    since.FromNanoseconds(int(started * 1e9))
    lines = []
    async for chunk in admin.admin.ExportAudit(apb.ExportAuditRequest(since=since, team="alpha"), metadata=AUTH):
        lines += chunk.jsonl.splitlines()
    exported = [orjson.loads(line) for line in lines]
    assert [e["request_id"] for e in exported] == ids
    assert all(e["team"] == "alpha" and e["time"].endswith("+00:00") for e in exported)


async def test_retention_purges_exactly_the_old_records(running: tuple[Gateway, Admin], tmp_path: Path) -> None:
    gateway, admin = running
    await admin.team("short", retention_days=7)
    await admin.team("long", retention_days=90)
    ledger = gateway.ledger
    day = 86_400.0
    now = time.time()
    ages = {"short": [1, 6.9, 7.1, 30], "long": [1, 30, 89, 91], "": [29, 31]}  # "" has the default 30 days
    await ledger.write(
        [
            AuditRecord(f"{team or 'none'}-{age}", now - age * day, team=team)
            for team, team_ages in ages.items()
            for age in team_ages
        ],
        with_audit=True,
    )
    purged = await admin.admin.PurgeAudit(apb.PurgeAuditRequest(by_retention=True), metadata=AUTH)
    assert purged.purged == 4
    left = sqlite3.connect(tmp_path / "gateway.db").execute("select request_id from audit").fetchall()
    assert sorted(r for (r,) in left) == sorted(["short-1", "short-6.9", "long-1", "long-30", "long-89", "none-29"])


async def test_purge_before_a_time_and_admin_only(running: tuple[Gateway, Admin]) -> None:
    gateway, admin = running
    member, _ = await admin.key()
    await admin.gateway.Chat(chat_request(), metadata=bearer(member))
    await gateway.audit.flush()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.admin.PurgeAudit(apb.PurgeAuditRequest(by_retention=True), metadata=bearer(member))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.admin.PurgeAudit(apb.PurgeAuditRequest(), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    before = timestamp_pb2.Timestamp()
    before.FromNanoseconds(int((time.time() + 1) * 1e9))
    purged = await admin.admin.PurgeAudit(apb.PurgeAuditRequest(before=before), metadata=AUTH)
    assert purged.purged >= 1
    assert not await records(admin)


async def test_strict_mode_commits_before_the_response_completes(start_gateway: StartGateway, tmp_path: Path) -> None:
    _, channel = await start_gateway(SIMULATED_CONFIG + "audit: {mode: strict}\n")
    admin = Admin.on(channel)
    for _ in range(5):
        response = await admin.gateway.Chat(chat_request(), metadata=AUTH)
        found = sqlite3.connect(tmp_path / "gateway.db").execute(
            "select status from audit where request_id = ?", (response.id,)
        )
        assert found.fetchall() == [("OK",)]
    async for chunk in admin.gateway.ChatStream(chat_request(), metadata=AUTH):
        if chunk.finish_reason:
            found = sqlite3.connect(tmp_path / "gateway.db").execute(
                "select kind from audit where request_id = ?", (chunk.id,)
            )
            assert found.fetchall() == [("stream",)]


async def test_a_graceful_shutdown_loses_nothing(start_gateway: StartGateway, tmp_path: Path) -> None:
    gateway, channel = await start_gateway(SIMULATED_CONFIG + "audit: {flush_interval_ms: 50}\n")
    admin = Admin.on(channel)
    ids = {(await admin.gateway.Chat(chat_request(), metadata=AUTH)).id for _ in range(30)}
    await gateway.stop(1.0)
    stored = sqlite3.connect(tmp_path / "gateway.db").execute("select request_id from audit").fetchall()
    assert ids <= {r for (r,) in stored}


async def test_auditing_off_still_keeps_the_ledger(start_gateway: StartGateway, tmp_path: Path) -> None:
    gateway, channel = await start_gateway(SIMULATED_CONFIG + "audit: {enabled: false}\n")
    admin = Admin.on(channel)
    await admin.gateway.Chat(chat_request(), metadata=AUTH)
    await gateway.audit.flush()
    database = sqlite3.connect(tmp_path / "gateway.db")
    assert database.execute("select count(*) from audit").fetchone() == (0,)
    assert database.execute("select count(*) from ledger").fetchone() == (1,)


async def test_store_round_trips_records(tmp_path: Path) -> None:
    engine = await open_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    ledger = LedgerStore(engine)
    record = AuditRecord(
        "r1",
        time.time(),
        key_id="key_1",
        team="t",
        attempts=[{"model": "m", "provider": "p", "outcome": "ok"}],
        guardrails=[{"type": "pii", "kind": "EMAIL_ADDRESS", "action": "redact", "count": 2}],
        request_body={"messages": [{"role": "user", "content": "hi"}], "parameters": {"max_tokens": 5}},
        response_body="hello",
    )
    await ledger.write([record], with_audit=True)

    [back] = await ledger.query_audit(AuditFilter(request_id="r1"))
    assert back == record
    ledger.close()
    await engine.dispose()


async def test_a_flush_waits_for_the_batch_being_written() -> None:
    """flush() returns only once what was submitted is committed, also when the writer has already taken it from
    the queue and is writing it (CI once read the ledger between the two)."""
    started, release = asyncio.Event(), asyncio.Event()
    committed: list[str] = []

    async def write(batch: list[AuditRecord]) -> None:
        started.set()
        await release.wait()
        committed.extend(r.request_id for r in batch)

    log = AuditLog(write, AuditSettings(flush_interval_s=0.001))
    log.start()
    log.submit(AuditRecord("r1", time.time()))
    await started.wait()  # the batch is out of the queue and in the write
    flushed = asyncio.ensure_future(log.flush())
    await asyncio.sleep(0.05)
    assert not flushed.done()
    release.set()
    await flushed
    assert committed == ["r1"]
    await log.close()
