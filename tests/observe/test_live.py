"""Each process's live snapshot, shared through the database and merged for the whole gateway: fresh ones summed,
stale ones left out and named, breakers at their most severe, drift flags once with their earliest start."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.observe.live import FORGET_S, merge
from gateway.records.live import ProcessLive
from gateway.store.database import open_engine
from gateway.store.live import SqlLiveStore

NOW = 1_800_000_000.0


def snapshot(process: str, age_s: float = 0.5, **figures: object) -> ProcessLive:
    return ProcessLive(process=process, at=NOW - age_s, **figures)  # type: ignore[arg-type]


def flag(metric: str, since: float) -> dict[str, object]:
    return {"model": "fast", "provider": "sim", "metric": metric, "since": since, "detail": "p50 1 -> 2"}


def test_fresh_snapshots_are_summed_and_stale_ones_left_out_and_named() -> None:
    merged = merge(
        [
            snapshot("a", in_flight=2, queued={"r": 1}),
            snapshot("b", in_flight=3, queued={"r": 2, "s": 1}),
            snapshot("gone", age_s=12.0, in_flight=50, queued={"r": 9}),
        ],
        NOW,
        stale_after_s=5.0,
    )
    assert (merged.processes, merged.in_flight, merged.queued) == (2, 5, {"r": 3, "s": 1})
    assert merged.stale == [{"process": "gone", "age_s": 12.0}]


def test_a_target_shows_its_most_severe_state_and_longest_rest() -> None:
    merged = merge(
        [
            snapshot("a", breakers=[{"target": "sim/fast", "state": "half_open", "rested_s": 0.0}]),
            snapshot("b", breakers=[{"target": "sim/fast", "state": "open", "rested_s": 4.5}]),
            snapshot("c", breakers=[{"target": "sim/other", "state": "closed", "rested_s": 2.0}]),
            snapshot("old", age_s=60, breakers=[{"target": "sim/old", "state": "open", "rested_s": 9.0}]),
        ],
        NOW,
        stale_after_s=5.0,
    )
    assert merged.breakers == [
        {"target": "sim/fast", "state": "open", "rested_s": 4.5, "processes": 2},
        {"target": "sim/other", "state": "closed", "rested_s": 2.0, "processes": 1},
    ]


def test_a_flag_raised_in_several_processes_shows_once_from_its_earliest_start() -> None:
    merged = merge(
        [
            snapshot("a", drift=[flag("latency_s", NOW - 300), flag("status", NOW - 60)]),
            snapshot("b", drift=[flag("latency_s", NOW - 900)]),
        ],
        NOW,
        stale_after_s=5.0,
    )
    assert [(f["metric"], f["since"]) for f in merged.drift] == [("latency_s", NOW - 900), ("status", NOW - 60)]


def test_the_last_purge_is_the_latest_of_any_process_stale_ones_included() -> None:
    merged = merge(
        [snapshot("a"), snapshot("purger", age_s=30, last_purge_at=NOW - 40), snapshot("b", last_purge_at=NOW - 90)],
        NOW,
        stale_after_s=5.0,
    )
    assert merged.last_purge_at == NOW - 40
    assert merge([snapshot("a")], NOW, 5.0).last_purge_at is None


async def store_round_trip(url: str) -> None:
    engine = await open_engine(url)
    store = SqlLiveStore(engine)
    try:
        await store.put(snapshot("a", in_flight=1), NOW - FORGET_S)
        await store.put(snapshot("long-gone", age_s=FORGET_S - 5), NOW - FORGET_S)
        await store.put(snapshot("a", age_s=0.0, in_flight=7, drift=[flag("status", NOW - 5)]), NOW - FORGET_S)
        assert sorted((s.process, s.in_flight) for s in await store.all()) == [("a", 7), ("long-gone", 0)]
        [mine] = [s for s in await store.all() if s.process == "a"]
        assert mine == snapshot("a", age_s=0.0, in_flight=7, drift=[flag("status", NOW - 5)])
        # A later put forgets a process not heard from for FORGET_S; a stopped one drops its own.
        await store.put(snapshot("b"), NOW - FORGET_S + 10)
        assert sorted(s.process for s in await store.all()) == ["a", "b"]
        await store.drop("a")
        assert [s.process for s in await store.all()] == ["b"]
    finally:
        await engine.dispose()


async def test_snapshots_are_replaced_in_place_and_forgotten_on_sqlite(tmp_path: Path) -> None:
    await store_round_trip(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")


async def test_snapshots_are_replaced_in_place_and_forgotten_on_postgres(postgres_url: str) -> None:
    await store_round_trip(postgres_url)


@pytest.mark.parametrize("extra", [{}, {"unknown": 1}])
def test_a_snapshot_written_by_another_release_reads_back(extra: dict[str, object]) -> None:
    written = snapshot("a", in_flight=4).payload() | extra
    assert ProcessLive.from_payload(written) == snapshot("a", in_flight=4)
