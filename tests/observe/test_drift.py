"""Drift through DriftMonitor: synthetic traffic on a fake clock, steady (with noise) and shifting."""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._core import DriftWindow
from gateway.config.observe import DriftConfig, ObserveConfig
from gateway.observe import drift
from gateway.observe.drift import DriftFlag, DriftMonitor, route_rule_label
from gateway.records.audit import AuditRecord

WINDOW_S = 60.0
CALLS = 200  # per window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0 * WINDOW_S  # a window boundary, so window starts are round numbers

    def __call__(self) -> float:
        return self.now


@dataclass
class Traffic:
    """How a fake provider behaves in one window."""

    latency_median_s: float = 1.0
    answer_median: float = 200.0
    finish: dict[str, float] = field(default_factory=lambda: {"stop": 0.97, "length": 0.02, "tool_calls": 0.01})
    errors: dict[str, float] = field(default_factory=lambda: {"UNAVAILABLE": 0.005})
    refusal_rate: float = 0.03
    prompt_median: float = 500.0


@dataclass
class Harness:
    monitor: DriftMonitor
    clock: FakeClock
    raised: list[tuple[str, str, DriftFlag]]

    def run(self, traffic: Traffic, windows: int, rng: random.Random, calls: int = CALLS) -> list[float]:
        """`windows` windows of `calls` calls each, spread evenly; returns each window's start."""
        starts = []
        for _ in range(windows):
            start = self.clock.now
            starts.append(start)
            for i in range(calls):
                self.clock.now = start + i * WINDOW_S / calls
                _one_call(self.monitor, traffic, rng)
            self.clock.now = start + WINDOW_S
        return starts


def _pick(rng: random.Random, shares: dict[str, float], rest: str) -> str:
    x = rng.random()
    for label, share in shares.items():
        if x < share:
            return label
        x -= share
    return rest


def _one_call(monitor: DriftMonitor, traffic: Traffic, rng: random.Random) -> None:
    status = _pick(rng, traffic.errors, "OK")
    monitor.observe(
        model="m",
        provider="p",
        status=status,
        latency_s=traffic.latency_median_s * math.exp(rng.gauss(0, 0.3)),
        ttfc_s=0.2 * traffic.latency_median_s * math.exp(rng.gauss(0, 0.3)),
        answer_tokens=round(traffic.answer_median * math.exp(rng.gauss(0, 0.4))),
        finish_reason=_pick(rng, traffic.finish, "stop"),
        refused=rng.random() < traffic.refusal_rate,
        prompt_tokens=round(traffic.prompt_median * math.exp(rng.gauss(0, 0.5))),
        route_rule=route_rule_label("smart", "long"),
    )


def _harness(**overrides: object) -> Harness:
    config = DriftConfig.model_validate({"window_s": WINDOW_S, **overrides})
    clock = FakeClock()
    raised: list[tuple[str, str, DriftFlag]] = []
    monitor = DriftMonitor(config, clock=clock, on_flag=lambda m, p, f: raised.append((m, p, f)))
    return Harness(monitor, clock, raised)


def _close(h: Harness) -> None:
    """Ends the open window (as the next call or a health request after its end would)."""
    h.clock.now += WINDOW_S


@pytest.mark.parametrize("seed", range(6))
def test_steady_traffic_with_noise_raises_nothing(seed: int) -> None:
    h = _harness()
    h.run(Traffic(), 40, random.Random(seed))
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.flags == ()
    assert health.ended == ()
    assert h.raised == []
    # The tests did run: the baseline is full and every metric has figures.
    assert health.baseline["latency_s"].count > 2000
    assert set(health.current) >= {"latency_s", "ttfc_s", "answer_tokens", "status", "finish_reason", "refusal"}


@pytest.mark.parametrize("seed", range(3))
def test_longer_and_slower_answers_raise_flags_since_the_first_shifted_window(seed: int) -> None:
    h = _harness()
    rng = random.Random(seed)
    h.run(Traffic(), 14, rng)
    starts = h.run(Traffic(latency_median_s=1.6, answer_median=360), 4, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    flags = {f.metric: f for f in health.flags}
    assert set(flags) >= {"latency_s", "ttfc_s", "answer_tokens"}
    for name in ("latency_s", "answer_tokens"):
        flag = flags[name]
        assert flag.statistic == "psi"
        assert flag.value >= flag.threshold == 0.25
        assert flag.p_value < 0.001
        assert flag.since == starts[0]
        assert flag.windows >= 2
    # Nothing else moved: status, finish reasons, refusals and prompt lengths stay quiet.
    assert set(flags) <= {"latency_s", "ttfc_s", "answer_tokens"}
    # Each flag was reported once, when raised (after consecutive_windows windows), with its pair.
    assert sorted(f.metric for _, _, f in h.raised) == sorted(flags)
    assert {(m, p) for m, p, _ in h.raised} == {("m", "p")}
    assert health.current["latency_s"].mean == pytest.approx(1.6 * math.exp(0.045), rel=0.1)
    assert health.baseline["latency_s"].mean == pytest.approx(math.exp(0.045), rel=0.1)


def test_one_odd_window_is_not_a_flag_and_a_flag_ends_when_the_shift_does() -> None:
    h = _harness()
    rng = random.Random(7)
    h.run(Traffic(), 14, rng)
    h.run(Traffic(latency_median_s=2.0), 1, rng)
    h.run(Traffic(), 1, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.flags == ()
    assert h.raised == []

    starts = h.run(Traffic(latency_median_s=2.0), 3, rng)
    back = h.run(Traffic(), 2, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert [f.metric for f in health.flags] == []
    ended = [f for f in health.ended if f.metric == "latency_s"]
    assert len(ended) == 1
    assert ended[0].since == starts[0]
    assert ended[0].until == back[0]


def test_a_lasting_shift_becomes_the_new_baseline_and_its_flag_ends() -> None:
    h = _harness(rebaseline_windows=4)
    rng = random.Random(9)
    h.run(Traffic(), 14, rng)
    starts = h.run(Traffic(latency_median_s=2.0), 12, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.flags == ()
    ended = {f.metric: f for f in health.ended}
    assert ended["latency_s"].since == starts[0]
    assert ended["latency_s"].until == starts[4]
    assert "taken as the new baseline" in ended["latency_s"].detail
    assert [f.metric for _, _, f in h.raised].count("latency_s") == 1
    assert health.baseline["latency_s"].mean == pytest.approx(2.0 * math.exp(0.045), rel=0.1)


def test_finish_reasons_turning_to_length_raise_a_categorical_flag() -> None:
    h = _harness()
    rng = random.Random(3)
    h.run(Traffic(), 14, rng)
    starts = h.run(Traffic(finish={"stop": 0.6, "length": 0.39, "tool_calls": 0.01}), 3, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    flags = {f.metric: f for f in health.flags}
    assert set(flags) == {"finish_reason"}
    flag = flags["finish_reason"]
    assert flag.statistic == "chi2"
    assert flag.value > flag.threshold
    assert flag.p_value < 0.001
    assert flag.since == starts[0]
    assert "'length'" in flag.detail
    assert health.current["finish_reason"].shares is not None
    assert health.current["finish_reason"].shares["length"] > 0.3


def test_error_codes_appearing_raise_a_status_flag() -> None:
    h = _harness()
    rng = random.Random(4)
    h.run(Traffic(), 14, rng)
    h.run(Traffic(errors={"UNAVAILABLE": 0.005, "RESOURCE_EXHAUSTED": 0.12}), 3, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    flags = {f.metric: f for f in health.flags}
    assert "status" in flags
    assert "RESOURCE_EXHAUSTED" in flags["status"].detail
    shares = health.current["status"].shares
    assert shares is not None
    assert shares["RESOURCE_EXHAUSTED"] > 0.06


def test_refusals_and_prompt_lengths_by_route_rule_drift_on_their_own() -> None:
    h = _harness()
    rng = random.Random(5)
    h.run(Traffic(), 14, rng)
    h.run(Traffic(refusal_rate=0.25, prompt_median=1500), 3, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert {f.metric for f in health.flags} == {"refusal", "prompt_tokens:smart/long"}


def test_windows_with_too_few_calls_are_not_tested() -> None:
    h = _harness(min_samples=100)
    rng = random.Random(6)
    h.run(Traffic(), 14, rng)
    h.run(Traffic(latency_median_s=3.0), 4, rng, calls=60)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.flags == ()
    assert health.current["latency_s"].count < 100


def test_idle_windows_do_not_empty_the_baseline() -> None:
    h = _harness(baseline_windows=4)
    rng = random.Random(8)
    h.run(Traffic(), 6, rng)
    h.clock.now += 1000 * WINDOW_S
    h.run(Traffic(latency_median_s=2.0), 3, rng)
    _close(h)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert "latency_s" in {f.metric for f in health.flags}


def test_memory_is_bounded_by_pairs_rules_and_categories() -> None:
    h = _harness(max_models=2, max_route_rules=3)
    for i in range(5):
        h.monitor.observe(model=f"m{i}", provider="p", latency_s=1.0)
    assert h.monitor.pairs() == [("m0", "p"), ("m1", "p")]
    assert h.monitor.dropped == 3
    for i in range(10):
        h.monitor.observe(model="m0", provider="p", latency_s=1.0, prompt_tokens=10, route_rule=f"r/{i}")
    for i in range(100):
        h.monitor.observe(model="m0", provider="p", status=f"CODE_{i}", latency_s=1.0)
    h.clock.now += 1
    health = h.monitor.model_health("m0", "p")
    assert health is not None
    prompt_metrics = sorted(k for k in health.live if k.startswith("prompt_tokens:"))
    assert prompt_metrics == ["prompt_tokens:other", "prompt_tokens:r/0", "prompt_tokens:r/1", "prompt_tokens:r/2"]
    assert health.live["prompt_tokens:other"].count == 7
    shares = health.live["status"].shares
    assert shares is not None
    assert len(shares) == drift.MAX_CATEGORIES
    assert shares["other"] > 0


def test_observe_record_reads_an_audit_record_and_skips_calls_that_reached_no_provider() -> None:
    h = _harness()
    record = AuditRecord("r1", 0.0, model="smart", served_model="gpt-x", provider="openai", latency_ms=1500.0)
    record.prompt_tokens, record.completion_tokens = 300, 42
    h.monitor.observe_record(record, ttfc_s=0.3, finish_reason="stop", refused=False, route_rule="smart/long")
    h.monitor.observe_record(AuditRecord("r2", 0.0, model="smart", status="UNAUTHENTICATED"))
    assert h.monitor.pairs() == [("gpt-x", "openai")]
    health = h.monitor.model_health("gpt-x", "openai")
    assert health is not None
    assert health.live["latency_s"].mean == pytest.approx(1.5)
    assert health.live["answer_tokens"].mean == 42
    assert health.live["prompt_tokens:smart/long"].mean == 300
    assert health.live["refusal"].shares == {"answered": 1.0}
    assert h.monitor.model_health("smart", "openai") is None
    h.monitor.observe(model="gpt-x", provider="azure", latency_s=1.0)
    h.monitor.observe(model="other", provider="openai", latency_s=1.0)
    assert [(x.model, x.provider) for x in h.monitor.health("gpt-x")] == [("gpt-x", "openai"), ("gpt-x", "azure")]
    assert len(h.monitor.health()) == 3


def test_failed_calls_count_as_errors_not_as_latency() -> None:
    h = _harness()
    h.monitor.observe(model="m", provider="p", status="DEADLINE_EXCEEDED", latency_s=30.0, answer_tokens=0)
    h.monitor.observe(model="m", provider="p", latency_s=1.0, answer_tokens=10)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.live["latency_s"].count == 1
    assert health.live["status"].shares == {"DEADLINE_EXCEEDED": 0.5, "OK": 0.5}


def test_a_disabled_monitor_tracks_nothing() -> None:
    h = _harness(enabled=False)
    h.monitor.observe(model="m", provider="p", latency_s=1.0)
    assert h.monitor.pairs() == []


def test_route_rule_label() -> None:
    assert route_rule_label("smart", "long") == "smart/long"
    assert route_rule_label("smart") == "smart"
    assert route_rule_label("") == "direct"


def test_drift_config_is_strict_and_part_of_observe() -> None:
    assert ObserveConfig().drift == DriftConfig()
    with pytest.raises(ValueError, match="extra"):
        DriftConfig.model_validate({"window": 5})
    with pytest.raises(ValueError, match="greater than 0"):
        DriftConfig(window_s=0)
    with pytest.raises(ValueError, match="rebaseline_windows must be >= consecutive_windows"):
        DriftConfig(consecutive_windows=3, rebaseline_windows=2)


# The statistics against values computed by hand or from tables.


def test_ks_statistic_is_the_largest_gap_of_cumulative_shares() -> None:
    assert drift.ks_statistic([1, 1, 0, 0], [0, 0, 1, 1]) == 1.0
    assert drift.ks_statistic([2, 2], [2, 2]) == 0.0
    assert drift.ks_statistic([3, 1, 0], [1, 1, 2]) == pytest.approx(0.75 - 0.25)
    assert drift.ks_statistic([0, 0], [1, 1]) == 0.0


def test_ks_p_value_matches_the_kolmogorov_table() -> None:
    # Large samples: P(D * sqrt(nm/(n+m)) > 1.358) = 0.05 and > 1.949 = 0.001.
    n = m = 1_000_000
    en = math.sqrt(n * m / (n + m))
    assert drift.ks_p_value(1.358 / en, n, m) == pytest.approx(0.05, rel=0.02)
    assert drift.ks_p_value(1.949 / en, n, m) == pytest.approx(0.001, rel=0.05)
    assert drift.ks_p_value(0.0, 10, 10) == 1.0


def test_chi2_against_the_table() -> None:
    z = drift.NormalDist().inv_cdf(0.95)
    assert drift.chi2_critical(10, z) == pytest.approx(18.307, rel=0.01)
    assert drift.chi2_critical(3, z) == pytest.approx(7.815, rel=0.01)
    assert drift.chi2_p_value(18.307, 10) == pytest.approx(0.05, rel=0.05)
    assert drift.chi2_p_value(0.0, 3) == 1.0
    # 2x2 table [[30, 70], [50, 50]]: chi-square 8.333 (no continuity correction).
    chi2, df = drift.chi2_homogeneity({"a": 30, "b": 70}, {"a": 50, "b": 50})
    assert chi2 == pytest.approx(8.3333, rel=1e-4)
    assert df == 1
    assert drift.chi2_homogeneity({"a": 5}, {"a": 7}) == (0.0, 0)


def test_psi_is_zero_for_equal_shares_and_matches_the_formula() -> None:
    assert drift.psi_numeric([10, 20, 30, 40], [1, 2, 3, 4], 4) == pytest.approx(0.0)
    # Four groups, one per fine bin (each is at least a quarter of the baseline): shares .25 each vs .1 .2 .3 .4.
    expected = sum((c - 0.25) * math.log(c / 0.25) for c in (0.1, 0.2, 0.3, 0.4))
    assert drift.psi_numeric([25, 25, 25, 25], [10, 20, 30, 40], 4) == pytest.approx(expected)
    # Fine bins are grouped at the baseline's quantiles: two groups of two bins here.
    assert drift.psi_numeric([25, 25, 25, 25], [10, 20, 30, 40], 2) == pytest.approx(
        (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    )


# Invariants over arbitrary inputs.

_samples = st.lists(st.floats(min_value=0.0, max_value=5000.0, allow_nan=False), min_size=1, max_size=300)


def _histogram(values: list[float]) -> list[int]:
    counts = [0] * (len(drift.SECONDS_EDGES) + 1)
    for v in values:
        counts[bisect.bisect_left(drift.SECONDS_EDGES, v)] += 1
    return counts


def _exact_ks(a: list[float], b: list[float]) -> float:
    points = sorted(set(a) | set(b))
    return max(
        abs(bisect.bisect_right(sorted(a), x) / len(a) - bisect.bisect_right(sorted(b), x) / len(b)) for x in points
    )


@given(_samples, _samples)
def test_binned_ks_is_a_lower_bound_of_the_exact_statistic_and_psi_is_not_negative(
    a: list[float], b: list[float]
) -> None:
    ha, hb = _histogram(a), _histogram(b)
    d = drift.ks_statistic(ha, hb)
    assert 0.0 <= d <= _exact_ks(a, b) + 1e-12
    assert drift.psi_numeric(ha, hb, 10) >= 0.0
    assert drift.psi_numeric(ha, ha, 10) == pytest.approx(0.0, abs=1e-12)
    assert 0.0 <= drift.ks_p_value(d, len(a), len(b)) <= 1.0


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 500)),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 500)),
)
def test_chi2_is_not_negative_and_zero_for_proportional_tables(a: dict[str, int], b: dict[str, int]) -> None:
    chi2, df = drift.chi2_homogeneity(a, b)
    assert chi2 >= 0.0
    assert df >= 0
    doubled, _ = drift.chi2_homogeneity(a, {k: 2 * v for k, v in a.items()})
    assert doubled == pytest.approx(0.0, abs=1e-9)


@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0.001, 100.0)), min_size=1, max_size=200))
def test_each_metrics_baseline_is_the_sum_of_its_ring(calls: list[tuple[int, float]]) -> None:
    """Whatever the traffic, the running baseline sums equal the windows they stand for (no drift of bookkeeping)."""
    h = _harness(baseline_windows=3, min_samples=5, min_baseline_samples=5, consecutive_windows=1, rebaseline_windows=2)
    for step, latency in calls:
        h.clock.now += step * WINDOW_S / 4
        h.monitor.observe(model="m", provider="p", latency_s=latency, status="OK" if latency < 50 else "INTERNAL")
    track = h.monitor._tracks[("m", "p")]
    for name, ring in track.rings.items():
        assert len(ring) <= 3
        base = track.baseline[name]
        assert base.n == sum(acc.n for acc in ring)
        if isinstance(base, drift._Numeric):
            assert base.counts == [sum(c) for c in zip(*(acc.counts for acc in ring), strict=True)] or not ring
        else:
            total: dict[str, int] = {}
            for acc in ring:
                for k, v in acc.counts.items():  # type: ignore[union-attr]
                    total[k] = total.get(k, 0) + v
            assert base.counts == total


@given(
    st.lists(
        st.tuples(st.floats(0.0, 1e5, allow_nan=False), st.integers(0, 2**40), st.sampled_from(["OK", "INTERNAL"])),
        min_size=1,
        max_size=60,
    )
)
def test_the_open_window_bins_each_value_where_bisect_puts_it_and_names_its_metrics_alike(
    calls: list[tuple[float, int, str]],
) -> None:
    """The Rust core's open window against the Python side's edges and names: each value in the bin bisect_left
    picks, exact sums, and the metric names drift.py declares."""
    h = _harness()
    for latency, tokens, status in calls:
        h.monitor.observe(
            model="m",
            provider="p",
            status=status,
            latency_s=latency,
            ttfc_s=latency / 2,
            answer_tokens=tokens,
            finish_reason="stop",
            refused=tokens % 2 == 0,
            prompt_tokens=tokens,
            route_rule="r",
        )
    [(_, _, _, window, closed)] = h.monitor.windows()
    assert not closed
    ok = [(latency, tokens) for latency, tokens, status in calls if status == "OK"]

    def histogram(values: list[float], edges: tuple[float, ...]) -> tuple[list[int], float]:
        counts = [0] * (len(edges) + 1)
        total = 0.0
        for v in values:
            counts[bisect.bisect_left(edges, v)] += 1
            total += v
        return counts, total

    expected = {
        f"{drift.PROMPT_TOKENS}:r": histogram([t for _, t, _ in calls], drift.TOKENS_EDGES),
        drift.LATENCY: histogram([lat for lat, _ in ok], drift.SECONDS_EDGES),
        drift.TTFC: histogram([lat / 2 for lat, _ in ok], drift.SECONDS_EDGES),
        drift.ANSWER_TOKENS: histogram([t for _, t in ok], drift.TOKENS_EDGES),
    }
    for name, (counts, total) in expected.items():
        if not sum(counts):
            assert name not in window
            continue
        acc = window[name]
        assert isinstance(acc, drift._Numeric)
        assert (acc.counts, acc.total, acc.n) == (counts, total, sum(counts))
    statuses = window[drift.STATUS]
    assert isinstance(statuses, drift._Categorical)
    assert statuses.n == len(calls)
    if ok:
        refusals = window[drift.REFUSAL]
        assert isinstance(refusals, drift._Categorical)
        refused = sum(1 for _, t in ok if t % 2 == 0)
        shares = ((drift.REFUSED, refused), (drift.ANSWERED, len(ok) - refused))
        assert refusals.counts == {label: count for label, count in shares if count}
        assert window[drift.FINISH_REASON].counts == {"stop": len(ok)}  # type: ignore[union-attr]
    assert set(window) <= {*expected, drift.STATUS, drift.REFUSAL, drift.FINISH_REASON}


def test_calls_observed_here_and_windows_absorbed_from_other_workers_close_as_one_window() -> None:
    h = _harness()
    h.monitor.observe(model="m", provider="p", latency_s=1.0)
    other = DriftMonitor(DriftConfig(window_s=WINDOW_S), clock=h.clock)
    other.observe(model="m", provider="p", latency_s=2.0, status="UNAVAILABLE")
    other.observe(model="m", provider="p", latency_s=4.0)
    [(_, _, index, window, _)] = other.windows()
    h.monitor.absorb("m", "p", index, window)
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.live["latency_s"].count == 2
    assert health.live["latency_s"].mean == pytest.approx(2.5)
    assert health.live["status"].shares == {"OK": pytest.approx(2 / 3), "UNAVAILABLE": pytest.approx(1 / 3)}
    h.clock.now += WINDOW_S
    health = h.monitor.model_health("m", "p")
    assert health is not None
    assert health.current["latency_s"].count == 2
    assert health.live == {}


@pytest.mark.parametrize("edges", [(), (1.0, 0.5), (0.0, math.nan)])
def test_the_open_window_refuses_edges_out_of_order(edges: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="seconds_edges: give at least one edge, in ascending order"):
        DriftWindow(edges, drift.TOKENS_EDGES, drift.MAX_CATEGORIES, 4)


def test_a_negative_count_from_a_provider_lands_in_the_first_bin_instead_of_failing_the_call() -> None:
    h = _harness()
    h.monitor.observe(model="m", provider="p", latency_s=1.0, answer_tokens=-3, prompt_tokens=-1)
    [(_, _, _, window, _)] = h.monitor.windows()
    answer = window[drift.ANSWER_TOKENS]
    assert isinstance(answer, drift._Numeric)
    assert answer.counts[0] == 1
    assert answer.total == -3
