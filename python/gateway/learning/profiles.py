"""Running profiles per (route, query type, model): calls, errors, refusals, quality from feedback, cost, answer
length and latency, each a sum that decays with the route's half-life, so old evidence fades and a model that got
worse is noticed.

Decay without rewriting: an observation x at time t is stored as x * 2^((t - epoch) / half_life) in the row of its
epoch (a span of EPOCH_HALF_LIVES half-lives), and read at time `now` as the row's sum times
2^((epoch - now) / half_life). Sums stay plain additions, so workers add their observations to shared rows in any
order and every reader gets the same decayed figures. Rows more than two epochs old weigh under 2^-16 and are
dropped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

EPOCH_HALF_LIVES = 16
LATENCY_BOUNDS_S = tuple(0.01 * 1.5**i for i in range(24))
"""Upper bounds of the latency histogram's buckets, 10 ms to 84 s, each half again the one before (p50/p90 to within
a bucket, about 25%)."""

MEMORY_SUFFIX = "#memory"
"""Appended to a route's name for the rows of its long memory ('#' is not allowed in a name: config/base.py)."""

ArmKey = tuple[str, str, str]
"""(route, query type, model)."""
RowKey = tuple[str, str, str, float]
"""(route, query type, model, epoch start)."""


class ProfileStore(Protocol):
    """Where every worker's profile sums meet (store/profiles.py: the database; state: Redis)."""

    async def add(self, rows: dict[RowKey, dict[str, float]]) -> None:
        """Adds each row's fields to the stored ones."""

    async def load(self, oldest: Mapping[str, float], floor: float) -> dict[RowKey, dict[str, float]]:
        """Every row kept, after dropping those of an epoch before their route's `oldest` (a long memory keeps its
        epochs longer than its route's recent one), or before `floor` for a route not in it (gone from the
        config)."""


@dataclass(frozen=True, slots=True)
class Profile:
    """One (route, query type, model)'s decayed figures."""

    route: str
    query_type: str
    model: str
    calls: float
    errors: float
    refusals: float
    """Answered calls whose answer declined the request (observe/refusal.py)."""
    feedback: float
    """Feedback on the route's quality metric."""
    quality_sum: float
    cost_usd_sum: float
    answer_tokens_sum: float
    latency_s_sum: float
    latency_histogram: tuple[float, ...]

    @property
    def ok_calls(self) -> float:
        return self.calls - self.errors

    @property
    def quality(self) -> float | None:
        return self.quality_sum / self.feedback if self.feedback > 0 else None

    @property
    def quality_sd(self) -> float | None:
        """The uncertainty of `quality`: the standard deviation of its Beta posterior from a uniform prior."""
        if self.feedback <= 0:
            return None
        a, b = 1 + self.quality_sum, 1 + self.feedback - self.quality_sum
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls > 0 else None

    @property
    def refusal_rate(self) -> float | None:
        """Of the answered calls."""
        return self.refusals / self.ok_calls if self.ok_calls > 0 else None

    @property
    def cost_usd(self) -> float | None:
        return self.cost_usd_sum / self.ok_calls if self.ok_calls > 0 else None

    @property
    def answer_tokens(self) -> float | None:
        return self.answer_tokens_sum / self.ok_calls if self.ok_calls > 0 else None

    @property
    def latency_s(self) -> float | None:
        return self.latency_s_sum / self.ok_calls if self.ok_calls > 0 else None

    def latency_quantile(self, q: float) -> float | None:
        """The upper bound of the histogram bucket holding the q-quantile."""
        total = sum(self.latency_histogram)
        if total <= 0:
            return None
        running = 0.0
        for bound, weight in zip(LATENCY_BOUNDS_S, self.latency_histogram, strict=True):
            running += weight
            if running >= q * total:
                return bound
        return LATENCY_BOUNDS_S[-1]


def _memory_arm(arm: ArmKey) -> ArmKey:
    """The arm's key in its route's long memory."""
    return (arm[0] + MEMORY_SUFFIX, arm[1], arm[2])


_LATENCY_FIELDS = tuple(f"l{i}" for i in range(len(LATENCY_BOUNDS_S)))


def latency_field(seconds: float) -> str:
    for bound, name in zip(LATENCY_BOUNDS_S, _LATENCY_FIELDS, strict=True):
        if seconds <= bound:
            return name
    return _LATENCY_FIELDS[-1]


class ProfileBook:
    """This process's view of the profiles: its own observations at once, every worker's after each sync."""

    def __init__(
        self,
        half_lives: dict[str, float],
        store: ProfileStore | None = None,
        memory_half_lives: dict[str, float] | None = None,
    ) -> None:
        """`half_lives`: per learned route, its half-life in seconds; `memory_half_lives`: per route that keeps a
        long memory too, that memory's. Without a store the book is all there is (one process, or a benchmark)."""
        self._routes = tuple(half_lives)
        self._half_lives = dict(half_lives)
        for route, half_life in (memory_half_lives or {}).items():
            self._half_lives[route + MEMORY_SUFFIX] = half_life
        self._store = store
        self._totals: dict[RowKey, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._pending: dict[RowKey, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def routes(self) -> Iterable[str]:
        return self._routes

    # --- recording ----------------------------------------------------------------------------------------------

    def observe_call(
        self,
        arm: ArmKey,
        at: float,
        *,
        ok: bool,
        latency_s: float,
        cost_usd: float,
        answer_tokens: int,
        refused: bool = False,
    ) -> None:
        """A call the route served (ok; `refused` when its answer declined the request) or failed."""
        fields = {"calls": 1.0}
        if ok:
            fields.update({"cost_usd": cost_usd, "answer_tokens": float(answer_tokens), "latency_s": latency_s})
            fields[latency_field(latency_s)] = 1.0
            if refused:
                fields["refusals"] = 1.0
        else:
            fields["errors"] = 1.0
        self._remember(arm, at, fields)

    def observe_quality(self, arm: ArmKey, at: float, quality: float, count: float = 1.0) -> None:
        """Feedback on the quality metric, scaled to [0, 1], for a call made at `at`. A changed rating comes as the
        difference from the old one with count 0."""
        self._remember(arm, at, {"feedback": count, "quality": quality})

    def _remember(self, arm: ArmKey, at: float, fields: dict[str, float]) -> None:
        """Into the recent memory, and into the long one when the route keeps it."""
        self._add(arm, at, fields)
        self._add(_memory_arm(arm), at, fields)

    def _add(self, arm: ArmKey, at: float, fields: dict[str, float]) -> None:
        half_life = self._half_lives.get(arm[0])
        if half_life is None:
            return
        span = EPOCH_HALF_LIVES * half_life
        epoch = math.floor(at / span) * span
        scale = 2.0 ** ((at - epoch) / half_life)
        row = (*arm, epoch)
        total = self._totals[row]
        pending = self._pending[row] if self._store is not None else None
        for name, value in fields.items():
            total[name] += value * scale
            if pending is not None:
                pending[name] += value * scale

    # --- reading ------------------------------------------------------------------------------------------------

    def figures(self, arm: ArmKey, now: float, *, memory: bool = False) -> tuple[float, float, float, float, float]:
        """What the learned strategy reads on every call, decayed to `now`: feedback, quality sum, answered calls,
        answer tokens and latency seconds (sums). Only these five: the whole profile costs ten times more. `memory`:
        of the route's long memory (its recent one when it keeps none)."""
        if memory and arm[0] + MEMORY_SUFFIX in self._half_lives:
            arm = _memory_arm(arm)
        feedback = quality = answered = tokens = latency = 0.0
        for row, factor in self._rows(arm, now):
            get = row.get
            feedback += get("feedback", 0.0) * factor
            quality += get("quality", 0.0) * factor
            answered += (get("calls", 0.0) - get("errors", 0.0)) * factor
            tokens += get("answer_tokens", 0.0) * factor
            latency += get("latency_s", 0.0) * factor
        return feedback, quality, answered, tokens, latency

    def _rows(self, arm: ArmKey, now: float) -> list[tuple[dict[str, float], float]]:
        """The arm's rows of this epoch and the one before, each with the factor that decays it to `now`."""
        half_life = self._half_lives.get(arm[0])
        if half_life is None:
            return []
        span = EPOCH_HALF_LIVES * half_life
        current = math.floor(now / span) * span
        found = []
        for epoch in (current, current - span):
            row = self._totals.get((*arm, epoch))
            if row is not None:
                found.append((row, 2.0 ** ((epoch - now) / half_life)))
        return found

    def profile(self, arm: ArmKey, now: float) -> Profile:
        sums: dict[str, float] = defaultdict(float)
        for row, factor in self._rows(arm, now):
            for name, value in row.items():
                sums[name] += value * factor
        return Profile(
            *arm,
            calls=sums["calls"],
            errors=sums["errors"],
            refusals=sums["refusals"],
            feedback=sums["feedback"],
            quality_sum=sums["quality"],
            cost_usd_sum=sums["cost_usd"],
            answer_tokens_sum=sums["answer_tokens"],
            latency_s_sum=sums["latency_s"],
            latency_histogram=tuple(sums[name] for name in _LATENCY_FIELDS),
        )

    def profiles(self, now: float, route: str = "") -> list[Profile]:
        """Every (route, query type, model) with evidence, of one route or of all."""
        arms = sorted({row[:3] for row in self._totals if row[0] in self._routes and (not route or row[0] == route)})
        return [p for p in (self.profile(arm, now) for arm in arms) if p.calls > 0 or p.feedback > 0]

    # --- sharing ------------------------------------------------------------------------------------------------

    async def sync(self, now: float) -> None:
        """Adds this process's observations to the store, then reads back every worker's."""
        if self._store is None:
            return
        sent, self._pending = self._pending, defaultdict(lambda: defaultdict(float))
        if sent:
            try:
                await self._store.add(sent)
            except BaseException:
                self._merge_into(self._pending, sent)  # kept for the next sync
                raise
        oldest = {
            route: (math.floor(now / (EPOCH_HALF_LIVES * h)) - 1) * EPOCH_HALF_LIVES * h
            for route, h in self._half_lives.items()
        }
        loaded = await self._store.load(oldest, min(oldest.values(), default=now))
        totals: dict[RowKey, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self._merge_into(totals, loaded)
        self._merge_into(totals, self._pending)  # what arrived while the store was busy
        self._totals = totals

    @staticmethod
    def _merge_into(target: dict[RowKey, dict[str, float]], source: dict[RowKey, dict[str, float]]) -> None:
        for row, fields in source.items():
            into = target[row]
            for name, value in fields.items():
                into[name] += value
