"""Model health across workers: each worker's windows, merged, tell what one monitor over every call would."""

from __future__ import annotations

import math
import random
from pathlib import Path

import orjson
import pytest

from gateway.config.observe import DriftConfig
from gateway.observe.drift import DriftMonitor, ModelHealth, decode_window, encode_window, history_windows
from gateway.observe.drift_share import SharedDrift, reset_folder
from tests.observe.test_drift import CALLS, WINDOW_S, FakeClock, Traffic, _one_call

CONFIG = DriftConfig(window_s=WINDOW_S)


def _split_traffic(seed: int, monitors: list[DriftMonitor], clock: FakeClock) -> list[float]:
    """14 steady windows then 4 slower, longer ones; every call goes to the monitor of all calls (the first) and to
    one of the workers' (the others), chosen at random as the kernel spreads connections."""
    rng = random.Random(seed)
    everything, *workers = monitors
    starts = []
    for window in range(18):
        traffic = Traffic() if window < 14 else Traffic(latency_median_s=1.6, answer_median=360)
        start = clock.now
        starts.append(start)
        for i in range(CALLS):
            clock.now = start + i * WINDOW_S / CALLS
            worker = rng.choice(workers)
            state = rng.getstate()
            _one_call(everything, traffic, rng)
            rng.setstate(state)
            _one_call(worker, traffic, rng)
        clock.now = start + WINDOW_S
    return starts


def _same(merged: ModelHealth, whole: ModelHealth) -> None:
    assert merged.window_start == whole.window_start
    for part in ("current", "baseline"):
        mine, theirs = getattr(merged, part), getattr(whole, part)
        assert set(mine) == set(theirs)
        for name, figures in theirs.items():
            assert mine[name].count == figures.count, (part, name)
            assert mine[name].p50 == figures.p50
            assert mine[name].shares == figures.shares
            if figures.mean is not None:
                assert mine[name].mean == pytest.approx(figures.mean)
    assert [(f.metric, f.since, f.windows) for f in merged.flags] == [
        (f.metric, f.since, f.windows) for f in whole.flags
    ]
    for mine_flag, flag in zip(merged.flags, whole.flags, strict=True):
        assert mine_flag.value == pytest.approx(flag.value)
    assert [(f.metric, f.since, f.until) for f in merged.ended] == [(f.metric, f.since, f.until) for f in whole.ended]


@pytest.mark.parametrize("seed", range(2))
async def test_two_workers_windows_merge_into_the_health_of_all_their_calls(tmp_path: Path, seed: int) -> None:
    clock = FakeClock()
    keep = history_windows(CONFIG)
    whole = DriftMonitor(CONFIG, clock=clock)
    first = DriftMonitor(CONFIG, clock=clock, keep_windows=keep)
    second = DriftMonitor(CONFIG, clock=clock, keep_windows=keep)
    starts = _split_traffic(seed, [whole, first, second], clock)
    clock.now += WINDOW_S
    mine = SharedDrift(first, CONFIG, tmp_path, clock=clock, name="first")
    theirs = SharedDrift(second, CONFIG, tmp_path, clock=clock, name="second")
    await theirs.close()  # writes its windows

    merged = await mine.health()
    expected = whole.health()
    assert [(h.model, h.provider) for h in merged] == [("m", "p")]
    _same(merged[0], expected[0])
    # The shift was seen on all calls, from its first window: each worker alone saw half of them.
    assert {"latency_s", "answer_tokens"} <= {f.metric for f in merged[0].flags}
    assert all(f.since == starts[14] for f in merged[0].flags)
    assert merged[0].current["status"].count == CALLS
    alone = first.model_health("m", "p")
    assert alone is not None
    assert alone.current["status"].count < CALLS
    assert await mine.health(model="other") == []


async def test_open_windows_count_and_a_worker_file_lags_until_written(tmp_path: Path) -> None:
    clock = FakeClock()
    first = DriftMonitor(CONFIG, clock=clock, keep_windows=history_windows(CONFIG))
    second = DriftMonitor(CONFIG, clock=clock, keep_windows=history_windows(CONFIG))
    for monitor in (first, second):
        for _ in range(10):
            monitor.observe(model="m", provider="p", latency_s=0.5)
    mine = SharedDrift(first, CONFIG, tmp_path, clock=clock, name="first")
    theirs = SharedDrift(second, CONFIG, tmp_path, clock=clock, name="second")
    clock.now += WINDOW_S  # the open windows close when the health is read
    assert (await mine.health())[0].current["status"].count == 10  # the other's file is not written yet
    await theirs.close()
    assert (await mine.health())[0].current["status"].count == 20


async def test_stale_and_damaged_files_are_skipped(tmp_path: Path) -> None:
    clock = FakeClock()
    monitor = DriftMonitor(CONFIG, clock=clock, keep_windows=history_windows(CONFIG))
    monitor.observe(model="m", provider="p", latency_s=0.5)
    old_index = int(clock.now // WINDOW_S) - history_windows(CONFIG) - 1
    window = encode_window({"status": decode_window({"status": {"c": {"OK": 7}, "n": 7}})["status"]})
    (tmp_path / "dead.json").write_bytes(orjson.dumps([["m", "p", old_index, window]]))
    (tmp_path / "broken.json").write_bytes(b"{not json")
    (tmp_path / "odd.json").write_bytes(orjson.dumps([["m", "p", int(clock.now // WINDOW_S), {"status": 1}]]))
    shared = SharedDrift(monitor, CONFIG, tmp_path, clock=clock, name="me")
    clock.now += WINDOW_S
    health = await shared.health()
    assert health[0].current["status"].count == 1
    assert not (tmp_path / "dead.json").exists()  # every window older than the history: removed


def test_the_supervisor_clears_a_previous_run(tmp_path: Path) -> None:
    (tmp_path / "123.json").write_bytes(b"[]")
    (tmp_path / "124.part").write_bytes(b"[")
    reset_folder(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_window_survives_encoding() -> None:
    clock = FakeClock()
    monitor = DriftMonitor(CONFIG, clock=clock, keep_windows=3)
    rng = random.Random(1)
    for _ in range(50):
        _one_call(monitor, Traffic(), rng)
    [(model, provider, index, window, closed)] = monitor.windows()
    assert (model, provider, index, closed) == ("m", "p", int(clock.now // WINDOW_S), False)
    again = decode_window(orjson.loads(orjson.dumps(encode_window(window))))
    assert set(again) == set(window)
    for name, acc in window.items():
        assert again[name].n == acc.n
        assert again[name].counts == acc.counts  # type: ignore[union-attr]
    latency = again["latency_s"]
    assert math.isclose(latency.total, window["latency_s"].total)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not a drift window"):
        decode_window({"latency_s": {"e": "x", "b": [], "n": 0, "t": 0}})
