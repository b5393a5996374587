"""Drift: whether a model's calls are changing, per (model, provider), against that model's own recent past.

Each finished call feeds one `DriftMonitor.observe`: one call into the Rust core's `DriftWindow`, which adds its values
to the pair's open time window (a few bisects and counter increments, no I/O). When a window closes (on the first call
or `model_health` after its end) each of its metrics is tested against the baseline, the `baseline_windows` closed
windows before it:

- numeric metrics (latency, time to first chunk, answer tokens, prompt tokens per route rule) keep a fixed histogram
  of log-spaced bins per window (4 bins per doubling, so ~19% wide), which bounds memory and lets windows be summed.
  A shift needs both a large Population Stability Index over the baseline's deciles (the effect) and a two-sample
  Kolmogorov-Smirnov distance that is significant at `ks_alpha` and at least `ks_min_statistic` (that it is not
  noise). KS on bins is computed at the bin edges, so it is a lower bound of the exact statistic.
- categorical metrics (status codes, finish reasons, refused or not) are tested with a chi-square test of homogeneity
  (baseline vs current counts) at `chi2_alpha`, and one category's share must move by `min_share_shift`.

A shift that holds `consecutive_windows` evaluated windows in a row becomes a `DriftFlag` stamped with the start of
the first of them; it ends when an evaluated window no longer shows it. A window in which a metric shifted does not
join that metric's baseline (so a flag is judged against the pre-shift normal, and going back to it is not a new
shift); a shift that lasts `rebaseline_windows` windows is taken as the new normal: that metric's baseline restarts
from the shifted windows and the flag ends. Ended flags stay in `ModelHealth.ended`.

Memory per (model, provider) is at most (baseline_windows + rebaseline_windows + 2) windows x metrics x ~90
counters, and the pairs tracked are capped by `max_models`, route rules by `max_route_rules`, categories per metric
by `MAX_CATEGORIES`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Protocol

from gateway._core import DriftWindow
from gateway.config.observe import DriftConfig

MAX_CATEGORIES = 24
"""Distinct labels kept per categorical metric in a worker's open window; later ones count as `other` (gRPC has 17
status codes), as do route rules past `max_route_rules`."""
MAX_ENDED = 32
"""Ended flags remembered per (model, provider)."""


def _log_edges(low: float, doublings: int, per_doubling: int = 4) -> tuple[float, ...]:
    return tuple(low * 2 ** (k / per_doubling) for k in range(doublings * per_doubling + 1))


SECONDS_EDGES = _log_edges(0.001, 22)
"""1 ms to ~70 min in 89 edges; a value goes into the first bin whose upper edge is >= it."""
TOKENS_EDGES = (0.0, *_log_edges(1.0, 20))
"""0, then 1 to ~1M tokens."""

# The metrics' names, as the Rust core's open window (rust/src/drift.rs) writes them: tests/observe/test_drift.py pins
# the two alike.
LATENCY = "latency_s"
TTFC = "ttfc_s"
ANSWER_TOKENS = "answer_tokens"
STATUS = "status"
FINISH_REASON = "finish_reason"
REFUSAL = "refusal"
PROMPT_TOKENS = "prompt_tokens"
"""Prompt length metrics are named `prompt_tokens:<route rule>`."""
REFUSED, ANSWERED = "refused", "answered"


def route_rule_label(route: str, rule: str | None = None) -> str:
    """The key prompt lengths are kept by: the route, and for rules routes the rule that matched (or `default`)."""
    if not route:
        return "direct"
    return f"{route}/{rule}" if rule else route


class _Numeric:
    """A histogram over fixed edges, with the count and the exact sum (for the mean)."""

    __slots__ = ("counts", "edges", "n", "total")

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.counts = [0] * (len(edges) + 1)
        self.n = 0
        self.total = 0.0

    def merge(self, other: _Numeric, sign: int = 1) -> None:
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += sign * c
        self.n += sign * other.n
        self.total += sign * other.total

    def empty(self) -> _Numeric:
        return _Numeric(self.edges)

    def quantile(self, q: float) -> float:
        """The geometric middle of the bin holding the q-quantile (within half a bin, ~10%, of the true value)."""
        if self.n == 0:
            return math.nan
        rank = q * self.n
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if c and seen >= rank:
                return self._bin_middle(i)
        return self._bin_middle(len(self.counts) - 1)

    def _bin_middle(self, i: int) -> float:
        edges = self.edges
        if i >= len(edges):
            return edges[-1]
        upper = edges[i]
        lower = edges[i - 1] if i > 0 else 0.0
        return math.sqrt(lower * upper) if lower > 0 else upper


class _Categorical:
    __slots__ = ("counts", "n")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.n = 0

    def merge(self, other: _Categorical, sign: int = 1) -> None:
        counts = self.counts
        for label, c in other.counts.items():
            left = counts.get(label, 0) + sign * c
            if left:
                counts[label] = left
            else:
                counts.pop(label, None)
        self.n += sign * other.n

    def empty(self) -> _Categorical:
        return _Categorical()


_Accumulator = _Numeric | _Categorical


@dataclass(frozen=True, slots=True)
class WindowTest:
    """One metric of one closed window against its baseline."""

    metric: str
    statistic: str
    """psi (numeric metrics, with the KS test's p-value) or chi2 (categorical metrics)."""
    value: float
    threshold: float
    p_value: float
    shifted: bool
    detail: str


@dataclass(frozen=True, slots=True)
class DriftFlag:
    metric: str
    """latency_s, ttfc_s, answer_tokens, status, finish_reason, refusal or prompt_tokens:<route rule>."""
    statistic: str
    value: float
    """The statistic in the latest window that showed the shift."""
    threshold: float
    p_value: float
    since: float
    """Start (clock seconds) of the first window of the run of windows that showed the shift."""
    windows: int
    """Evaluated windows in a row that showed it."""
    detail: str
    """What moved, for a person: e.g. `p50 1.02 -> 2.05; ks 0.71 (critical 0.15)`."""
    until: float | None = None
    """Set on ended flags: the start of the first window that no longer showed the shift, or for a shift taken as
    the new baseline (detail says so) the end of the window in which it was."""


@dataclass(frozen=True, slots=True)
class Figures:
    """A metric's figures over a span of windows: numeric ones have mean and quantiles, categorical ones shares."""

    count: int
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    shares: dict[str, float] | None = None


@dataclass(frozen=True, slots=True)
class ModelHealth:
    model: str
    provider: str
    window_s: float
    window_start: float | None
    """Start of the last closed window, the one `current` describes and the flags were last tested on."""
    current: dict[str, Figures]
    baseline: dict[str, Figures]
    """Each metric's baseline: up to baseline_windows closed windows before `current`, less those it shifted in."""
    live: dict[str, Figures]
    """The open window so far (not yet tested)."""
    flags: tuple[DriftFlag, ...]
    ended: tuple[DriftFlag, ...]


class CallRecord(Protocol):
    """What `observe_record` reads: the fields of gateway.records.audit.AuditRecord it needs."""

    served_model: str
    model: str
    provider: str
    status: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int


class _Watch:
    """A metric's run of shifted windows (kept out of its baseline) and its flag."""

    __slots__ = ("flag", "held", "shifted", "since")

    def __init__(self) -> None:
        self.held = 0
        self.since = 0.0
        self.flag: DriftFlag | None = None
        self.shifted: list[_Accumulator] = []
        """The run's windows before the last closed one, for a re-baseline."""


class _Track:
    """One (model, provider): its open window, last closed window, and per metric a ring of baseline windows with
    their running sum."""

    __slots__ = (
        "absorbed",
        "baseline",
        "ended",
        "history",
        "index",
        "key",
        "last",
        "last_shifted",
        "last_start",
        "open",
        "rings",
        "watches",
    )

    def __init__(self, key: tuple[str, str], index: int, config: DriftConfig, keep_windows: int = 0) -> None:
        self.key = key
        self.index = index
        self.history: deque[tuple[int, dict[str, _Accumulator]]] | None = (
            deque(maxlen=keep_windows) if keep_windows else None
        )
        """The last closed windows by index, kept only to be shared with other workers (`windows()`)."""
        self.open = DriftWindow(SECONDS_EDGES, TOKENS_EDGES, MAX_CATEGORIES, config.max_route_rules)
        """The open window's calls observed here (and the route rules seen, which outlive a window)."""
        self.absorbed: dict[str, _Accumulator] = {}
        """The open window's counts from other workers (`absorb`)."""
        self.last: dict[str, _Accumulator] | None = None
        self.last_start: float | None = None
        self.last_shifted: set[str] = set()
        self.rings: dict[str, deque[_Accumulator]] = {}
        self.baseline: dict[str, _Accumulator] = {}
        self.watches: dict[str, _Watch] = {}
        self.ended: deque[DriftFlag] = deque(maxlen=MAX_ENDED)

    def current(self) -> dict[str, _Accumulator]:
        """The open window so far: the calls observed here and those absorbed."""
        return _merged(decode_window(self.open.peek()), self.absorbed)

    def close(self) -> dict[str, _Accumulator]:
        """The open window's metrics; the next window starts empty."""
        closed = _merged(decode_window(self.open.take()), self.absorbed)
        self.absorbed = {}
        return closed


FlagHandler = Callable[[str, str, DriftFlag], None]
"""Called with (model, provider, flag) when a flag is raised; the pipeline logs it and sets a gauge."""


class DriftMonitor:
    """Rolling windows per (model, provider), each closed window tested against its baseline. Not thread-safe: call
    it from the event loop (each method is short and never awaits)."""

    def __init__(
        self,
        config: DriftConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_flag: FlagHandler | None = None,
        keep_windows: int = 0,
    ) -> None:
        """`keep_windows`: closed windows kept per pair for `windows()` (0: none, the single-process default);
        `history_windows(config)` is what a replay needs to reach the same baselines and flags."""
        self._config = config
        self._clock = clock
        self._on_flag = on_flag
        self._keep_windows = keep_windows
        self._tracks: dict[tuple[str, str], _Track] = {}
        self.changes = 0
        """Counts calls observed, so a reader of `windows()` knows whether anything changed since its last read."""
        self._ks_c = math.sqrt(-math.log(config.ks_alpha / 2) / 2)
        self._z_chi2 = NormalDist().inv_cdf(1 - config.chi2_alpha)
        self.dropped = 0
        """Calls not tracked because max_models pairs were already tracked."""

    def observe(
        self,
        *,
        model: str,
        provider: str,
        status: str = "OK",
        latency_s: float,
        ttfc_s: float | None = None,
        answer_tokens: int | None = None,
        finish_reason: str = "",
        refused: bool | None = None,
        prompt_tokens: int | None = None,
        route_rule: str = "",
    ) -> None:
        """One finished call. Latency, time to first chunk, answer length, finish reason and refusal count only for
        calls that succeeded (status OK), so a burst of fast failures shows as errors, not as a latency shift."""
        if not self._config.enabled:
            return
        track = self._track(model, provider)
        if track is None:
            return
        self.changes += 1
        track.open.observe(status, latency_s, ttfc_s, answer_tokens, finish_reason, refused, prompt_tokens, route_rule)

    def observe_record(
        self,
        record: CallRecord,
        *,
        ttfc_s: float | None = None,
        finish_reason: str = "",
        refused: bool | None = None,
        route_rule: str = "",
    ) -> None:
        """observe() from an audit record: the served model (else the one asked for), provider, status, latency and
        token counts. Calls that never reached a provider are skipped: they say nothing about a model."""
        if not record.provider or not self._config.enabled:
            return
        track = self._track(record.served_model or record.model, record.provider)
        if track is None:
            return
        self.changes += 1
        track.open.observe(
            record.status,
            record.latency_ms / 1000,
            ttfc_s,
            record.completion_tokens,
            finish_reason,
            refused,
            record.prompt_tokens,
            route_rule,
        )

    def model_health(self, model: str, provider: str) -> ModelHealth | None:
        """Current (last closed window), baseline and live figures with the flags; None for a pair never seen."""
        track = self._tracks.get((model, provider))
        if track is None:
            return None
        self._roll_if_due(track)
        baseline = track.baseline
        return ModelHealth(
            model=model,
            provider=provider,
            window_s=self._config.window_s,
            window_start=track.last_start,
            current=_figures(track.last or {}),
            baseline=_figures(baseline),
            live=_figures(track.current()),
            flags=tuple(w.flag for w in track.watches.values() if w.flag is not None),
            ended=tuple(track.ended),
        )

    def health(self, model: str | None = None) -> list[ModelHealth]:
        """model_health for every provider of `model` (every pair when None), for Insights.GetModelHealth."""
        pairs = [pair for pair in self._tracks if model is None or pair[0] == model]
        return [h for pair in pairs if (h := self.model_health(*pair)) is not None]

    def pairs(self) -> list[tuple[str, str]]:
        """The (model, provider) pairs seen, for a health listing."""
        return list(self._tracks)

    def flags(self) -> list[tuple[str, str, DriftFlag]]:
        """Every flag raised now, across pairs (closing windows that are due first)."""
        out: list[tuple[str, str, DriftFlag]] = []
        for (model, provider), track in self._tracks.items():
            self._roll_if_due(track)
            out.extend((model, provider, w.flag) for w in track.watches.values() if w.flag is not None)
        return out

    def windows(self) -> list[tuple[str, str, int, dict[str, _Accumulator], bool]]:
        """(model, provider, window index, metrics, closed) of the kept closed windows and of each open one, oldest
        first per pair: what another process merges with its own (`absorb`). A window's index is its start //
        window_s; a closed window's metrics never change again."""
        out: list[tuple[str, str, int, dict[str, _Accumulator], bool]] = []
        for (model, provider), track in self._tracks.items():
            for index, window in track.history or ():
                out.append((model, provider, index, window, True))
            current = track.current()
            if current:
                out.append((model, provider, track.index, current, False))
        return out

    def absorb(self, model: str, provider: str, index: int, window: dict[str, _Accumulator]) -> None:
        """Adds a window's counts (another worker's, or several workers' summed) as if its calls had been observed
        here; windows of one pair must come in index order. The flag handler is not called for flags this raises."""
        track = self._tracks.get((model, provider))
        if track is None:
            if len(self._tracks) >= self._config.max_models:
                self.dropped += 1
                return
            track = self._tracks[(model, provider)] = _Track((model, provider), index, self._config, self._keep_windows)
        elif track.index != index:
            on_flag, self._on_flag = self._on_flag, None
            try:
                self._roll(model, provider, track, index)
            finally:
                self._on_flag = on_flag
        _merged(track.absorbed, window)
        self.changes += 1

    def _track(self, model: str, provider: str) -> _Track | None:
        index = int(self._clock() // self._config.window_s)
        track = self._tracks.get((model, provider))
        if track is None:
            if len(self._tracks) >= self._config.max_models:
                self.dropped += 1
                return None
            track = self._tracks[(model, provider)] = _Track((model, provider), index, self._config, self._keep_windows)
        elif track.index != index:
            self._roll(model, provider, track, index)
        return track

    def _roll_if_due(self, track: _Track) -> None:
        index = int(self._clock() // self._config.window_s)
        if track.index != index:
            self._roll(*track.key, track, index)

    def _roll(self, model: str, provider: str, track: _Track, index: int) -> None:
        """Closes the open window: the previous closed one joins the baseline (but for metrics that shifted in it),
        the new one is tested against it. Windows without calls are skipped, so an idle night keeps the baseline."""
        closed_index, start = track.index, track.index * self._config.window_s
        track.index = index
        closed = track.close()
        if not closed:
            return
        if track.history is not None:
            track.history.append((closed_index, closed))
        if track.last is not None:
            for name, acc in track.last.items():
                if name in track.last_shifted:
                    watch = track.watches.get(name)
                    if watch is not None:
                        watch.shifted.append(acc)
                else:
                    self._add_to_baseline(track, name, acc)
        track.last, track.last_start = closed, start
        track.last_shifted = set()
        for name, acc in closed.items():
            base = track.baseline.get(name)
            if base is None:
                continue
            result = self._test(name, acc, base)
            if result is not None:
                self._update_watch(model, provider, track, result, start)

    def _add_to_baseline(self, track: _Track, name: str, acc: _Accumulator) -> None:
        ring = track.rings.get(name)
        if ring is None:
            ring = track.rings[name] = deque(maxlen=self._config.baseline_windows)
            track.baseline[name] = acc.empty()
        base = track.baseline[name]
        if len(ring) == ring.maxlen:
            base.merge(ring[0], -1)  # type: ignore[arg-type]  # a metric's windows are all of one kind
        ring.append(acc)
        base.merge(acc)  # type: ignore[arg-type]

    def _test(self, metric: str, current: _Accumulator, baseline: _Accumulator) -> WindowTest | None:
        """The metric's test of one window against a baseline; None when either has too few values to say."""
        config = self._config
        if current.n < config.min_samples or baseline.n < config.min_baseline_samples:
            return None
        if isinstance(current, _Numeric) and isinstance(baseline, _Numeric):
            return self._test_numeric(metric, current, baseline)
        if isinstance(current, _Categorical) and isinstance(baseline, _Categorical):
            return self._test_categorical(metric, current, baseline)
        return None

    def _test_numeric(self, metric: str, current: _Numeric, baseline: _Numeric) -> WindowTest:
        config = self._config
        d = ks_statistic(baseline.counts, current.counts)
        n, m = baseline.n, current.n
        critical = max(config.ks_min_statistic, self._ks_c * math.sqrt((n + m) / (n * m)))
        p = ks_p_value(d, n, m)
        psi = psi_numeric(baseline.counts, current.counts, config.psi_bins)
        shifted = psi >= config.psi_threshold and d >= critical
        detail = (
            f"p50 {baseline.quantile(0.5):.4g} -> {current.quantile(0.5):.4g}, "
            f"p95 {baseline.quantile(0.95):.4g} -> {current.quantile(0.95):.4g}; "
            f"ks {d:.3f} (critical {critical:.3f}, n {m} vs {n})"
        )
        return WindowTest(metric, "psi", psi, config.psi_threshold, p, shifted, detail)

    def _test_categorical(self, metric: str, current: _Categorical, baseline: _Categorical) -> WindowTest:
        config = self._config
        chi2, df = chi2_homogeneity(baseline.counts, current.counts)
        critical = chi2_critical(df, self._z_chi2) if df > 0 else math.inf
        p = chi2_p_value(chi2, df) if df > 0 else 1.0
        moved = 0.0
        rise, rise_label, fall, fall_label = 0.0, "", 0.0, ""
        for key in baseline.counts.keys() | current.counts.keys():
            delta = current.counts.get(key, 0) / current.n - baseline.counts.get(key, 0) / baseline.n
            moved = max(moved, abs(delta))
            if delta > rise:
                rise, rise_label = delta, key
            if delta < fall:
                fall, fall_label = delta, key
        shifted = chi2 >= critical and moved >= config.min_share_shift
        parts = [
            f"share of {label!r} {baseline.counts.get(label, 0) / baseline.n:.3f} -> "
            f"{current.counts.get(label, 0) / current.n:.3f}"
            for label in (rise_label, fall_label)
            if label
        ]
        detail = "; ".join([*parts, f"df {df}, n {current.n} vs {baseline.n}"])
        return WindowTest(metric, "chi2", chi2, critical, p, shifted, detail)

    def _update_watch(self, model: str, provider: str, track: _Track, result: WindowTest, start: float) -> None:
        name = result.metric
        watch = track.watches.get(name)
        if not result.shifted:
            if watch is not None:
                if watch.flag is not None:
                    track.ended.append(_ended(watch.flag, until=start))
                del track.watches[name]
            return
        track.last_shifted.add(name)
        if watch is None:
            watch = track.watches[name] = _Watch()
            watch.since = start
        watch.held += 1
        if watch.held < self._config.consecutive_windows:
            return
        raised = watch.flag is None
        watch.flag = DriftFlag(
            name,
            result.statistic,
            result.value,
            result.threshold,
            result.p_value,
            watch.since,
            watch.held,
            result.detail,
        )
        if raised and self._on_flag is not None:
            self._on_flag(model, provider, watch.flag)
        if watch.held >= self._config.rebaseline_windows:
            # A lasting shift is the new normal: the baseline restarts from the run's windows (the last closed one
            # joins at the next close) and the flag ends.
            ring = track.rings[name]
            ring.clear()
            track.baseline[name] = base = watch.shifted[0].empty() if watch.shifted else track.baseline[name].empty()
            for acc in watch.shifted[-self._config.baseline_windows :]:
                ring.append(acc)
                base.merge(acc)  # type: ignore[arg-type]  # a metric's windows are all of one kind
            track.ended.append(_ended(watch.flag, until=start + self._config.window_s, rebaselined=True))
            track.last_shifted.discard(name)
            del track.watches[name]


def _ended(flag: DriftFlag, *, until: float, rebaselined: bool = False) -> DriftFlag:
    detail = flag.detail + ("; taken as the new baseline" if rebaselined else "")
    return DriftFlag(
        flag.metric,
        flag.statistic,
        flag.value,
        flag.threshold,
        flag.p_value,
        flag.since,
        flag.windows,
        detail,
        until=until,
    )


def _merged(window: dict[str, _Accumulator], more: dict[str, _Accumulator]) -> dict[str, _Accumulator]:
    """`window` with `more`'s counts added (into `window`'s own accumulators)."""
    for name, acc in more.items():
        mine = window.get(name)
        if mine is None:
            mine = window[name] = acc.empty()
        mine.merge(acc)  # type: ignore[arg-type]  # a metric's windows are all of one kind
    return window


def _figures(window: dict[str, _Accumulator]) -> dict[str, Figures]:
    out: dict[str, Figures] = {}
    for name, acc in sorted(window.items()):
        if acc.n <= 0:
            continue
        if isinstance(acc, _Numeric):
            out[name] = Figures(acc.n, mean=acc.total / acc.n, p50=acc.quantile(0.5), p95=acc.quantile(0.95))
        else:
            shares = {label: c / acc.n for label, c in sorted(acc.counts.items())}
            out[name] = Figures(acc.n, shares=shares)
    return out


def history_windows(config: DriftConfig) -> int:
    """Closed windows a replay needs to rebuild a pair's baselines, runs and flags as a continuous monitor has them:
    a full baseline, the longest run before a re-baseline, the last closed window and one to spare."""
    return config.baseline_windows + config.rebaseline_windows + 2


_EDGES_BY_NAME: dict[str, tuple[float, ...]] = {"s": SECONDS_EDGES, "t": TOKENS_EDGES}


def encode_window(window: dict[str, _Accumulator]) -> dict[str, object]:
    """A window's metrics as plain JSON values: numeric histograms as their non-zero bins only."""
    out: dict[str, object] = {}
    for name, acc in window.items():
        if isinstance(acc, _Numeric):
            edges = "s" if acc.edges is SECONDS_EDGES else "t"
            bins = [[i, c] for i, c in enumerate(acc.counts) if c]
            out[name] = {"e": edges, "b": bins, "n": acc.n, "t": acc.total}
        else:
            out[name] = {"c": dict(acc.counts), "n": acc.n}
    return out


def decode_window(data: dict[str, Any]) -> dict[str, _Accumulator]:
    """`encode_window`'s inverse; ValueError for data it did not write."""
    window: dict[str, _Accumulator] = {}
    try:
        for name, raw in data.items():
            acc: _Accumulator
            if "e" in raw:
                numeric = _Numeric(_EDGES_BY_NAME[raw["e"]])
                for i, c in raw["b"]:
                    numeric.counts[int(i)] = int(c)
                numeric.n, numeric.total = int(raw["n"]), float(raw["t"])
                acc = numeric
            else:
                categorical = _Categorical()
                categorical.counts = {str(k): int(v) for k, v in raw["c"].items()}
                categorical.n = int(raw["n"])
                acc = categorical
            window[name] = acc
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise ValueError(f"not a drift window: {err!r}") from None
    return window


# The statistics. Each works on counts, so a window costs O(bins) to test, whatever its number of calls.


def ks_statistic(a: Iterable[int], b: Iterable[int]) -> float:
    """Two-sample Kolmogorov-Smirnov distance between two histograms over the same bins: the largest gap of their
    cumulative shares at a bin edge."""
    a, b = list(a), list(b)
    na, nb = sum(a), sum(b)
    if na == 0 or nb == 0:
        return 0.0
    ca = cb = 0
    d = 0.0
    for x, y in zip(a, b, strict=True):
        ca += x
        cb += y
        d = max(d, abs(ca / na - cb / nb))
    return d


def ks_p_value(d: float, n: int, m: int) -> float:
    """The asymptotic Kolmogorov distribution's tail, with Stephens' small-sample correction (Numerical Recipes)."""
    if d <= 0:
        return 1.0
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-10:
            break
        sign = -sign
    return min(1.0, max(0.0, 2 * total))


def psi_numeric(baseline: list[int], current: list[int], bins: int) -> float:
    """Population Stability Index over about `bins` groups of fine bins, cut at the baseline's quantiles (so each
    group holds ~1/bins of the baseline). Empty groups count as half a value, so one empty group costs a bounded
    amount instead of an infinite log."""
    nb, nc = sum(baseline), sum(current)
    if nb == 0 or nc == 0:
        return 0.0
    groups_b: list[int] = []
    groups_c: list[int] = []
    cum = 0  # baseline values in fine bins so far
    gb = gc = 0  # in the group being filled
    next_cut = 1
    for x, y in zip(baseline, current, strict=True):
        cum += x
        gb += x
        gc += y
        if cum * bins >= next_cut * nb:
            groups_b.append(gb)
            groups_c.append(gc)
            gb = gc = 0
            while next_cut * nb <= cum * bins:
                next_cut += 1
    if gb or gc:
        groups_b.append(gb)
        groups_c.append(gc)
    return _psi(groups_b, groups_c, nb, nc)


def _psi(groups_b: list[int], groups_c: list[int], nb: int, nc: int) -> float:
    total = 0.0
    for x, y in zip(groups_b, groups_c, strict=True):
        pb = max(x, 0.5) / nb
        pc = max(y, 0.5) / nc
        total += (pc - pb) * math.log(pc / pb)
    return total


def chi2_homogeneity(baseline: dict[str, int], current: dict[str, int]) -> tuple[float, int]:
    """Pearson's chi-square test of homogeneity on a 2 x k table; returns (statistic, degrees of freedom)."""
    nb, nc = sum(baseline.values()), sum(current.values())
    n = nb + nc
    labels = [k for k in baseline.keys() | current.keys() if baseline.get(k, 0) + current.get(k, 0) > 0]
    if nb == 0 or nc == 0 or len(labels) < 2:
        return 0.0, 0
    chi2 = 0.0
    for k in labels:
        ob, oc = baseline.get(k, 0), current.get(k, 0)
        col = ob + oc
        eb, ec = nb * col / n, nc * col / n
        chi2 += (ob - eb) ** 2 / eb + (oc - ec) ** 2 / ec
    return chi2, len(labels) - 1


def chi2_p_value(chi2: float, df: int) -> float:
    """Upper tail of chi-square by the Wilson-Hilferty cube-root normal approximation (good to a few percent of p
    in the tail that matters here, without scipy)."""
    if chi2 <= 0:
        return 1.0
    k = float(df)
    z = ((chi2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_critical(df: int, z: float) -> float:
    """The chi-square value whose upper tail is the significance whose normal quantile is z (Wilson-Hilferty)."""
    k = float(df)
    return k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3
