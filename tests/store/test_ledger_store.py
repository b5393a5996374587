"""The ledger store's sums and queries on the embedded SQLite, record by record: how a batch folds into ledger rows
(cache hits, calls that cost nothing, several groups), each grouping of usage, the per-route and per-call views the
insights read, every audit filter, an export across pages, and purges by team.

test_databases.py runs the store on PostgreSQL as well; these pin the arithmetic and the filters' edges (a bound
included or not, a page boundary between records of the same instant)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sqlite3.dbapi2
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.ledger.retention import Retention
from gateway.records.audit import AuditFilter, AuditRecord, GroupBy, UsageFilter, UsageRow
from gateway.records.governance import Team
from gateway.store.database import open_engine
from gateway.store.ledger import LedgerStore

T = 1_700_000_000.0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    engine = await open_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    made = LedgerStore(engine)
    yield made
    made.close()
    await engine.dispose()


def call(request_id: str, at: float = T, **fields: object) -> AuditRecord:
    values: dict[str, object] = {
        "key_id": "key_1",
        "team": "red",
        "model": "fast",
        "served_model": "fast",
        "provider": "p",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.25,
    }
    values.update(fields)
    return AuditRecord(request_id, at, **values)  # type: ignore[arg-type]


def everything(since: float = T - 100, until: float = T + 100, **where: str) -> UsageFilter:
    return UsageFilter(since, until, **where)


async def test_batches_written_at_once_queue_for_the_one_writer_thread(store: LedgerStore) -> None:
    """The writer's one connection is used by one thread only (a SQLite connection must not be shared): batches
    written at once wait for it, in the thread named for it."""
    before = set(threading.enumerate())
    await asyncio.gather(*(store.write([call(f"r{i}")], with_audit=True) for i in range(8)))
    assert [thread.name for thread in set(threading.enumerate()) - before] == ["ledger-writer_0"]
    assert len(await store.query_audit(AuditFilter())) == 8


async def test_a_batch_folds_into_one_row_per_group_with_cache_hits_as_requests_without_tokens(
    store: LedgerStore,
) -> None:
    await store.write(
        [
            call("a", T, cached_tokens=4),
            call("b", T + 2, prompt_tokens=20, completion_tokens=1, cost_usd=0.5, cached_tokens=2),
            call("hit", T + 1, cache={"kind": "exact"}, cost_usd=0.0, cache_saved_usd=0.125, cached_tokens=3),
            call("free", T, cost_usd=0.0, prompt_tokens=0, completion_tokens=0),  # not served: no ledger row
            call("unrouted", T, provider=""),  # refused before a provider: no ledger row
            call("other", T, key_id="key_2", team="blue", served_model="smart", provider="q", cost_usd=1.0),
        ],
        with_audit=False,
    )
    [red] = await store.usage(GroupBy.TEAM, everything(team="red"))
    assert red == UsageRow("red", 3, 30, 6, 6, 0.75, 1, 0.125)
    assert await store.usage(GroupBy.TEAM, everything()) == [
        UsageRow("blue", 1, 10, 5, 0, 1.0, 0, 0.0),  # dearest first
        red,
    ]
    assert await store.query_audit(AuditFilter()) == []  # the ledger alone
    # One row for the three red calls, stamped with the latest call's time.
    assert await store.spend(everything(since=T + 2, team="red")) == 0.75
    assert await store.spend(everything(until=T + 2, team="red")) == 0.0


async def test_usage_groups_by_key_model_and_provider_within_bounds(store: LedgerStore) -> None:
    await store.write(
        [
            call("a", T, key_id="key_1", served_model="fast", provider="p", cost_usd=0.25),
            call("b", T + 10, key_id="key_2", served_model="smart", provider="q", cost_usd=1.0),
            call("c", T + 20, key_id="key_2", team="blue", served_model="fast", provider="p", cost_usd=0.5),
        ],
        with_audit=True,
    )
    by_key = await store.usage(GroupBy.KEY, everything())
    assert [(r.group, r.requests, r.cost_usd) for r in by_key] == [("key_2", 2, 1.5), ("key_1", 1, 0.25)]
    by_model = await store.usage(GroupBy.MODEL, everything())
    assert [(r.group, r.requests, r.cost_usd) for r in by_model] == [("smart", 1, 1.0), ("fast", 2, 0.75)]
    by_provider = await store.usage(GroupBy.PROVIDER, everything(key_id="key_2"))
    assert [(r.group, r.cost_usd) for r in by_provider] == [("q", 1.0), ("p", 0.5)]
    # since is included, until is not
    assert [r.group for r in await store.usage(GroupBy.KEY, everything(since=T + 10, until=T + 20))] == ["key_2"]
    assert await store.spend(everything(since=T + 10, until=T + 20)) == 1.0
    assert await store.spend(everything(team="red", key_id="key_1")) == 0.25
    assert await store.spend(everything(team="blue", key_id="key_1")) == 0.0


async def test_usage_by_team_model_and_route(store: LedgerStore) -> None:
    await store.write(
        [
            call("a", T, route="chat", served_model="fast", cached_tokens=3, cost_usd=0.25),
            call("b", T, route="chat", served_model="fast", cost_usd=0.25),
            call("c", T, route="", served_model="smart", cost_usd=1.0),
            call("d", T, route="chat", served_model="smart", cost_usd=0.125),
            call("e", T, route="", served_model="fast", cost_usd=0.0625),
            call("hit", T, route="chat", served_model="fast", cache={"kind": "exact"}, cache_saved_usd=0.5),
            call("f", T, team="blue", route="chat", served_model="fast", cost_usd=2.0),
        ],
        with_audit=False,
    )
    assert await store.usage_by_team_model_route(everything(team="red")) == [
        ("red", "smart", "", UsageRow("smart", 1, 10, 5, 0, 1.0, 0, 0.0)),
        ("red", "fast", "chat", UsageRow("fast", 3, 20, 10, 3, 0.75, 1, 0.5)),
        ("red", "smart", "chat", UsageRow("smart", 1, 10, 5, 0, 0.125, 0, 0.0)),
        ("red", "fast", "", UsageRow("fast", 1, 10, 5, 0, 0.0625, 0, 0.0)),
    ]
    rows = await store.usage_by_team_model_route(everything())
    assert [(team, model, route) for team, model, route, _ in rows][:2] == [
        ("blue", "fast", "chat"),
        ("red", "smart", ""),
    ]
    assert len(rows) == 5
    assert await store.usage_by_team_model_route(everything(since=T + 1)) == []


async def test_usage_counts_deferred_calls_their_cost_and_what_they_would_have_cost_sent_at_once(
    store: LedgerStore,
) -> None:
    """What the deferral report sums: a call held for a cheaper window, beside one sent at once and one held but
    never priced at once (no `interactive_usd`: not counted as deferred)."""
    held = {"group": "nightly", "held_s": 600.0, "window": "16:30-00:30 UTC"}
    await store.write(
        [
            call("held", T, route="chat", cost_usd=0.25, deferred={**held, "interactive_usd": 1.0}),
            call("unpriced", T, route="chat", cost_usd=0.5, deferred=held),
            call("at-once", T, route="chat", cost_usd=2.0),
        ],
        with_audit=False,
    )
    [red] = await store.usage(GroupBy.TEAM, everything())
    assert (red.requests, red.deferred_calls, red.deferred_cost_usd, red.deferred_interactive_usd) == (3, 1, 0.25, 1.0)
    [(team, model, route, row)] = await store.usage_by_team_model_route(everything())
    assert (team, model, route) == ("red", "fast", "chat")
    assert (row.deferred_calls, row.deferred_cost_usd, row.deferred_interactive_usd) == (1, 0.25, 1.0)


async def test_deferred_calls_of_one_group_in_one_batch_add_up(store: LedgerStore) -> None:
    """A batch folds a group's calls into one row: each deferred call adds its count, cost and at-once price."""
    held = {"group": "nightly", "held_s": 600.0, "window": "16:30-00:30 UTC"}
    await store.write(
        [
            call("first", T, cost_usd=0.25, deferred={**held, "interactive_usd": 1.0}),
            call("second", T + 1, cost_usd=0.5, deferred={**held, "interactive_usd": 2.0}),
            call("third", T + 2, cost_usd=0.125, deferred={**held, "interactive_usd": 0.5}),
        ],
        with_audit=False,
    )
    [red] = await store.usage(GroupBy.TEAM, everything())
    assert (red.requests, red.deferred_calls, red.deferred_cost_usd, red.deferred_interactive_usd) == (
        3,
        3,
        0.875,
        3.5,
    )


async def test_call_stats_count_calls_failures_and_mean_latency_per_serving_model(store: LedgerStore) -> None:
    await store.write(
        [
            call("a", T, route="chat", model="chat-model", latency_ms=100.0),
            call("b", T, route="chat", model="chat-model", latency_ms=300.0, status="UNAVAILABLE"),
            call("c", T, route="chat", served_model="", model="smart", latency_ms=50.0, status="PERMISSION_DENIED"),
            call("d", T, route="", model="fast", latency_ms=20.0),
            call("e", T, team="blue", route="chat", latency_ms=10.0),
            call("late", T + 100, route="chat", latency_ms=10.0),
        ],
        with_audit=True,
    )
    assert await store.call_stats(everything(team="red", until=T + 100)) == {
        ("red", "fast", "chat"): (2, 1, 200.0),  # by the model that served, not the one asked for
        ("red", "smart", "chat"): (1, 1, 50.0),  # never served: counted under the model asked for
        ("red", "fast", ""): (1, 0, 20.0),
    }
    assert set(await store.call_stats(everything(until=T + 100))) == {
        ("red", "fast", "chat"),
        ("red", "smart", "chat"),
        ("red", "fast", ""),
        ("blue", "fast", "chat"),
    }
    assert await store.call_stats(everything(since=T + 100, until=T + 101)) == {("red", "fast", "chat"): (1, 0, 10.0)}


async def test_audit_queries_filter_by_each_field_newest_first_up_to_the_limit(store: LedgerStore) -> None:
    records = [
        call("a", T, key_id="key_1", team="red"),
        call("b", T + 1, key_id="key_2", team="red", status="UNAVAILABLE"),
        call("c", T + 2, key_id="key_1", team="blue"),
        call("d", T + 3, key_id="key_2", team="blue"),
    ]
    await store.write(records, with_audit=True)

    async def ids(**where: object) -> list[str]:
        return [r.request_id for r in await store.query_audit(AuditFilter(**where))]  # type: ignore[arg-type]

    assert await ids() == ["d", "c", "b", "a"]
    assert await ids(limit=2) == ["d", "c"]
    assert await ids(since=T + 1) == ["d", "c", "b"]
    assert await ids(until=T + 2) == ["b", "a"]
    assert await ids(team="red") == ["b", "a"]
    assert await ids(key_id="key_1") == ["c", "a"]
    assert await ids(request_id="c") == ["c"]
    assert await ids(status="UNAVAILABLE") == ["b"]
    assert await ids(team="blue", key_id="key_2", since=T + 3, until=T + 4) == ["d"]
    assert (await store.query_audit(AuditFilter(request_id="a"))) == [records[0]]


async def test_an_export_spans_pages_oldest_first_with_records_of_one_instant_across_a_page_boundary(
    store: LedgerStore,
) -> None:
    """1,000 records a page: 2,050 records, the 990th to the 1,010th of the same instant, export each once. Request
    ids run against time (as random ids may): an id only breaks ties between records of one instant."""
    records = [
        call(f"r{2049 - i:04d}", T + (990 if 990 <= i <= 1010 else i), team="red" if i % 3 else "blue")
        for i in range(2050)
    ]
    stored = list(records)
    # Stored in no order (neither by time nor by id, as the database's own row order would break ties): the export
    # orders them itself.
    random.Random(14).shuffle(stored)
    await store.write(stored, with_audit=True)
    exported: list[str] = []
    async for record in store.export_audit(AuditFilter()):
        exported.append(record.request_id)
        if len(exported) > len(records):  # a page read again may go on for ever
            break
    assert exported == [r.request_id for r in sorted(records, key=lambda r: (r.at, r.request_id))]
    blue = [r.request_id async for r in store.export_audit(AuditFilter(team="blue", since=T + 2000))]
    assert blue == [f"r{2049 - i:04d}" for i in range(2001, 2050) if i % 3 == 0]
    assert [r async for r in store.export_audit(AuditFilter(team="green"))] == []


async def test_purges_delete_before_a_time_by_team_or_for_every_team_but_some(store: LedgerStore) -> None:
    await store.write(
        [
            call("red-old", T, team="red"),
            call("red-new", T + 10, team="red"),
            call("blue-old", T, team="blue"),
            call("green-old", T, team="green"),
        ],
        with_audit=True,
    )
    assert await store.purge_audit(T + 10, team="red") == 1  # before is not inclusive: red-new stays
    assert await store.purge_audit(T + 11, other_than={"green"}) == 2
    assert [r.request_id for r in await store.query_audit(AuditFilter())] == ["green-old"]
    assert await store.purge_audit(T + 11, other_than=set()) == 1


async def test_audit_sequences_give_each_writers_lowest_and_highest_number_and_count_within_bounds(
    store: LedgerStore,
) -> None:
    await store.write(
        [
            call("before", T - 1, writer="w1", seq=1),
            call("first", T, writer="w1", seq=2),
            call("other-team", T + 5, writer="w1", seq=3, team="blue"),
            call("after-a-gap", T + 9, writer="w1", seq=5),
            call("at-until", T + 10, writer="w1", seq=6),
            call("second-writer", T + 1, writer="w2", seq=1),
            call("unnumbered", T + 2, writer="w3"),  # seq 0: written before records were numbered
        ],
        with_audit=True,
    )
    # Since is included, until is not: w1's 2, 3 and 5 are in, 4 is missing (a lost record).
    assert await store.audit_sequences(T, T + 10) == {"w1": (2, 5, 3), "w2": (1, 1, 1)}
    assert await store.audit_sequences(T + 20, T + 30) == {}


async def test_retention_purges_each_team_past_its_own_days_and_every_other_team_past_the_default(
    store: LedgerStore,
) -> None:
    """The rule the compliance report promises, without a gateway: a team's own days, else the default's."""
    day = 86_400.0
    teams = [Team("short", retention_days=7), Team("long", retention_days=90), Team("same", retention_days=30)]
    teams.append(Team("unset", retention_days=0))  # 0: the team keeps the default
    ages = {"short": [6.9, 7.1], "long": [89, 91], "same": [29, 31], "unset": [29, 31], "gone": [29, 31]}
    await store.write(
        [call(f"{team}-{age}", T - age * day, team=team) for team, team_ages in ages.items() for age in team_ages],
        with_audit=True,
    )
    retention = Retention(store, lambda: teams, default_days=30, interval_s=3600, clock=lambda: T)
    assert retention.last_purge_at is None
    assert await retention.purge() == 5
    left = sorted(record.request_id for record in await store.query_audit(AuditFilter()))
    assert left == ["gone-29", "long-89", "same-29", "short-6.9", "unset-29"]
    assert retention.last_purge_at == T
    assert await retention.purge() == 0


async def test_retention_purges_in_the_background_until_closed(store: LedgerStore) -> None:
    now = [T]
    retention = Retention(store, list, default_days=1, interval_s=0.001, clock=lambda: now[0])
    await store.write([call("old", T - 86_401)], with_audit=True)
    retention.start()
    for _ in range(500):
        if retention.last_purge_at is not None:
            break
        await asyncio.sleep(0.01)
    assert retention.last_purge_at == T
    assert await store.query_audit(AuditFilter()) == []
    await retention.close()
    now[0] = T + 1
    await asyncio.sleep(0.05)  # fifty intervals
    assert retention.last_purge_at == T, "a closed retention purges no more"


async def test_close_of_a_retention_never_started_returns(store: LedgerStore) -> None:
    await asyncio.wait_for(Retention(store, list, default_days=1, interval_s=3600).close(), 10)


async def test_the_retention_task_is_named_audit_retention(store: LedgerStore) -> None:
    """The name task dumps and tracebacks show (asyncio debug mode, py-spy)."""
    retention = Retention(store, list, default_days=1, interval_s=3600)
    retention.start()
    assert "audit-retention" in {task.get_name() for task in asyncio.all_tasks()}
    await retention.close()


async def test_a_record_without_a_cache_hit_stores_sql_null_the_analytics_select_by(tmp_path: Path) -> None:
    """The analytics read answered calls as `cache IS NULL`: a JSON 'null' in its place would hide them all."""
    engine = await open_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    store = LedgerStore(engine)
    try:
        await store.write([call("miss"), call("hit", cache={"kind": "exact"}, cost_usd=0.0)], with_audit=True)
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT request_id FROM audit WHERE cache IS NULL"))).all()
        assert [row[0] for row in found] == ["miss"]
    finally:
        store.close()
        await engine.dispose()


@pytest.mark.parametrize(("strict", "mode"), [(True, "FULL"), (False, "NORMAL")])
async def test_the_connection_that_commits_batches_syncs_every_commit_in_strict_mode_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strict: bool, mode: str
) -> None:
    """Strict audit mode promises a committed record survives a power cut: the writer's own connection (not only the
    engine queries run on) must fsync each commit. Seen from SQLite's statement trace of every connection opened."""
    statements: dict[int, list[str]] = {}
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.setdefault(id(connection), []).append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", traced)
    engine = await open_engine(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    made = LedgerStore(engine, synchronous_full=True) if strict else LedgerStore(engine)
    try:
        await made.write([call("req_1")], with_audit=True)
    finally:
        made.close()
        await engine.dispose()
    writers = [seen for seen in statements.values() if any(s.startswith("INSERT INTO audit") for s in seen)]
    assert len(writers) == 1
    assert [s for s in writers[0] if s.startswith("PRAGMA synchronous")] == [f"PRAGMA synchronous={mode}"]
