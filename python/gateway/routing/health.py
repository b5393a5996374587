"""What the router knows about each target: its circuit breaker, recent latency, load and rate-limit cooldown.

Pure bookkeeping with an injectable clock, so breakers and latency tracking are tested without sockets or sleeps.
A breaker that opens and a rest a provider asks for are also told to the other gateway processes (`Announce`, wired
by the server to state/notices.py), which apply them to their own boards: one process's discovery protects all.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from gateway.config.routes import CircuitBreakerConfig

Clock = Callable[[], float]
Announce = Callable[[str, str, float], None]
"""(event, target key, seconds): "open" (a breaker opened for that long) or "rest" (the provider asked for it)."""
OPEN, REST = "open", "rest"
# Recent latencies weigh this much in the moving average: a target that turns slow is noticed within ~5 calls.
EWMA_ALPHA = 0.3
TTFT_SAMPLES = 64


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed: calls flow. Open after `consecutive_failures` in a row or an error rate over the window: the target is
    skipped for `open_s`. Then half-open: one probe call; its success closes the breaker, its failure re-opens it."""

    def __init__(
        self,
        config: CircuitBreakerConfig,
        clock: Clock = time.monotonic,
        on_open: Callable[[float], None] | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._on_open = on_open
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._consecutive = 0
        self._outcomes: deque[bool] = deque(maxlen=config.window)
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._config.open_s:
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the target now; in half-open state this admits the one probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        if self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._outcomes.clear()
        self._consecutive = 0
        self._outcomes.append(True)

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._consecutive += 1
        self._outcomes.append(False)
        failures = self._outcomes.count(False)
        rate_tripped = len(self._outcomes) >= self._config.min_calls and (
            failures / len(self._outcomes) >= self._config.error_rate
        )
        if self._consecutive >= self._config.consecutive_failures or rate_tripped:
            self._open()

    def _open(self) -> None:
        self.open_now()
        if self._on_open is not None:
            self._on_open(self._config.open_s)

    def open_now(self) -> None:
        """Opens for `open_s` from now: this process saw the failures, or another one did and said so."""
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._probe_in_flight = False
        self._consecutive = 0


class TargetHealth:
    """One target's live figures."""

    def __init__(
        self, breaker: CircuitBreaker, clock: Clock = time.monotonic, on_rest: Callable[[float], None] | None = None
    ) -> None:
        self.breaker = breaker
        self._clock = clock
        self._on_rest = on_rest
        self.in_flight = 0
        self.ewma_ttft_s: float | None = None
        self.ewma_total_s: float | None = None
        self.cooldown_until = 0.0
        self._ttft: deque[float] = deque(maxlen=TTFT_SAMPLES)

    def observe(self, ttft_s: float, total_s: float) -> None:
        self.ewma_ttft_s = _ewma(self.ewma_ttft_s, ttft_s)
        self.ewma_total_s = _ewma(self.ewma_total_s, total_s)
        self._ttft.append(ttft_s)

    def ttft_percentile(self, percentile: float) -> float | None:
        if not self._ttft:
            return None
        ordered = sorted(self._ttft)
        return ordered[min(len(ordered) - 1, int(len(ordered) * percentile / 100))]

    def cool_down(self, seconds: float) -> None:
        """The provider rate-limited us: send nothing more until it said to come back."""
        self.rest(seconds)
        if self._on_rest is not None:
            self._on_rest(seconds)

    def rest(self, seconds: float) -> None:
        """Sends nothing to this target for `seconds` (this process's 429, or another's)."""
        self.cooldown_until = max(self.cooldown_until, self._clock() + seconds)

    def cooling_for(self) -> float:
        return max(0.0, self.cooldown_until - self._clock())


def _ewma(previous: float | None, sample: float) -> float:
    return sample if previous is None else previous + EWMA_ALPHA * (sample - previous)


class HealthBoard:
    """Health of every target, by target key, created on first use."""

    def __init__(self, config: CircuitBreakerConfig, clock: Clock = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._targets: dict[str, TargetHealth] = {}
        self._announce: Announce | None = None

    def announce_with(self, announce: Announce) -> None:
        """Breakers that open and rests providers ask for from now on are told through `announce`."""
        self._announce = announce

    def __getitem__(self, key: str) -> TargetHealth:
        health = self._targets.get(key)
        if health is None:
            announce = self._announce
            on_open = on_rest = None
            if announce is not None:
                on_open = functools.partial(announce, OPEN, key)
                on_rest = functools.partial(announce, REST, key)
            breaker = CircuitBreaker(self._config, self._clock, on_open)
            health = self._targets[key] = TargetHealth(breaker, self._clock, on_rest)
        return health

    def apply(self, event: str, key: str, seconds: float) -> None:
        """What another process announced about a target."""
        health = self[key]
        if event == OPEN:
            health.breaker.open_now()
        elif event == REST:
            health.rest(seconds)

    def items(self) -> list[tuple[str, TargetHealth]]:
        return list(self._targets.items())
