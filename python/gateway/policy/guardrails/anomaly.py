"""Usage anomalies per key: running baselines (EWMA mean and variance) of request rate, prompt length, answer length
and error rate, and a verdict when a request, a burst or a run of answers falls far outside them.

- Request rate: requests are counted per `window_s` window; each closed window (empty ones included) updates the
  baseline of requests per window. A burst is the current window's count so far with z over `z_threshold` (and at
  least `min_burst` requests). The spread is floored at the Poisson one (sqrt of the mean, at least 1), so perfectly
  regular traffic does not make an ordinary jitter look like a burst.
- Prompt and answer length: in log space (lengths are multiplicative: 2x longer matters equally at 100 and 10,000
  tokens), spread floored at 0.25 (~1.3x). A run of `long_answer_run` answers each over `long_answer_z` is flagged
  even when none is extreme alone.
- Error rate: a short EWMA of the error indicator against the long one, in binomial standard errors.
Anomalous observations enter the baseline clipped to the threshold, so a burst does not become the new normal at
once. No key is judged before `warmup` observations.

A verdict's action is the policy's (flag, throttle, block) when a signal fired; throttle and block also hold for
`cooldown_s` on the key's later requests. State is per process and not thread-safe: one detector per event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from gateway.config.guardrails import AnomalyAction, AnomalyPolicy, GuardrailsConfig
from gateway.errors import PermissionDenied, RateLimited
from gateway.policy.guardrails.actions import GuardrailAction

Metric = Literal["request_rate", "prompt_tokens", "answer_tokens", "long_answers", "error_rate", "cooldown"]
Verdict = Literal["none", "flag", "throttle", "block"]

_LENGTH_STD_FLOOR = 0.25
_ERROR_P_FLOOR = 0.05
_MIN_RECENT_ERROR_RATE = 0.5
"""A spike needs most recent calls failing (three in a row from a clean history), not one unlucky error."""
_MAX_IDLE_UPDATES = 200
"""Empty windows folded into the rate baseline after a pause; beyond this the baseline has decayed anyway."""


@dataclass(frozen=True, slots=True)
class AnomalySignal:
    metric: Metric
    value: float
    """The observation: requests in the window, tokens, answers in the run, short-term error rate."""
    baseline: float
    """The baseline's mean in the same unit."""
    z: float


@dataclass(frozen=True, slots=True)
class AnomalyVerdict:
    action: Verdict
    signals: tuple[AnomalySignal, ...] = ()
    retry_after: float | None = None
    """Seconds until the key's cooldown ends, for throttle and block."""

    @property
    def actions(self) -> tuple[GuardrailAction, ...]:
        return tuple(GuardrailAction("usage", "anomaly", s.metric, self.action) for s in self.signals) or (
            (GuardrailAction("usage", "anomaly", "cooldown", self.action),) if self.action != "none" else ()
        )

    def enforce(self) -> None:
        """Raise for throttle (RateLimited, ANOMALY_THROTTLED, with retry_after) or block (PermissionDenied,
        ANOMALY_BLOCKED); return for none and flag."""
        metrics = ",".join(sorted({s.metric for s in self.signals})) or "cooldown"
        if self.action == "throttle":
            raise RateLimited(
                "this key's usage is far outside its usual pattern; retry later",
                reason="ANOMALY_THROTTLED",
                retry_after=self.retry_after,
                metadata={"metrics": metrics},
            )
        if self.action == "block":
            raise PermissionDenied(
                "this key's usage is far outside its usual pattern and is blocked for now",
                reason="ANOMALY_BLOCKED",
                retry_after=self.retry_after,
                metadata={"metrics": metrics},
            )


_NONE = AnomalyVerdict("none")
_ENFORCED: dict[AnomalyAction, Verdict] = {AnomalyAction.THROTTLE: "throttle", AnomalyAction.BLOCK: "block"}


@dataclass(slots=True)
class _Ewma:
    mean: float = 0.0
    var: float = 0.0
    n: int = 0

    def z(self, x: float, std_floor: float) -> float:
        return (x - self.mean) / max(math.sqrt(self.var), std_floor)

    def update(self, x: float, alpha: float) -> None:
        if self.n == 0:
            self.mean = x
        else:
            # West's incremental EWMA variance: var' = (1 - a) * (var + a * d^2).
            d = x - self.mean
            self.mean += alpha * d
            self.var = (1.0 - alpha) * (self.var + alpha * d * d)
        self.n += 1


@dataclass(slots=True)
class _KeyState:
    window: int
    count: int = 0
    rate: _Ewma = field(default_factory=_Ewma)
    prompt: _Ewma = field(default_factory=_Ewma)
    answer: _Ewma = field(default_factory=_Ewma)
    errors: _Ewma = field(default_factory=_Ewma)
    recent_errors: float = 0.0
    long_run: int = 0
    penalty_until: float = 0.0


class AnomalyDetector:
    def __init__(self, policy: AnomalyPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        # The short error average reacts ~5x faster than the baseline; its effective sample size sets the spread.
        self._short_alpha = min(0.5, 5 * policy.alpha)
        self._short_n = (2.0 - self._short_alpha) / self._short_alpha

    @classmethod
    def from_config(cls, config: GuardrailsConfig, *, clock: Callable[[], float] = time.monotonic) -> AnomalyDetector:
        return cls(config.anomaly, clock=clock)

    def __len__(self) -> int:
        return len(self._keys)

    def observe_request(self, key: str, prompt_tokens: int) -> AnomalyVerdict:
        """Before a request is sent: counts it in the key's rate and checks its prompt length. Call `enforce()` on
        the verdict to apply throttle or block."""
        policy = self.policy
        if policy.action is AnomalyAction.OFF:
            return _NONE
        now = self._clock()
        state = self._state(key, now)
        self._roll_windows(state, now)
        state.count += 1
        signals: list[AnomalySignal] = []

        rate = state.rate
        if rate.n >= policy.warmup and state.count >= policy.min_burst:
            z = rate.z(state.count, math.sqrt(max(rate.mean, 1.0)))
            if z > policy.z_threshold:
                signals.append(AnomalySignal("request_rate", state.count, rate.mean, z))

        signal = self._length(state.prompt, "prompt_tokens", prompt_tokens)
        if signal is not None:
            signals.append(signal)
        return self._verdict(state, now, signals)

    def observe_answer(self, key: str, answer_tokens: int, *, error: bool = False) -> AnomalyVerdict:
        """After an answer (or an error: pass answer_tokens=0, error=True). Its verdict is flag at most (the answer
        is out); a throttle or block policy starts the key's cooldown for its next requests."""
        policy = self.policy
        if policy.action is AnomalyAction.OFF:
            return _NONE
        now = self._clock()
        state = self._state(key, now)
        signals: list[AnomalySignal] = []

        errors = state.errors
        indicator = 1.0 if error else 0.0
        state.recent_errors += self._short_alpha * (indicator - state.recent_errors) if errors.n else indicator
        if errors.n >= policy.warmup:
            p = max(errors.mean, _ERROR_P_FLOOR)
            z = (state.recent_errors - p) / math.sqrt(p * (1.0 - p) / self._short_n)
            if z > policy.z_threshold and state.recent_errors >= _MIN_RECENT_ERROR_RATE:
                signals.append(AnomalySignal("error_rate", state.recent_errors, errors.mean, z))
        errors.update(indicator, policy.alpha)

        if not error:
            answer = state.answer
            if answer.n >= policy.warmup:
                z = answer.z(math.log1p(answer_tokens), _LENGTH_STD_FLOOR)
                state.long_run = state.long_run + 1 if z > policy.long_answer_z else 0
                if state.long_run >= policy.long_answer_run:
                    signals.append(AnomalySignal("long_answers", state.long_run, math.expm1(answer.mean), z))
            signal = self._length(answer, "answer_tokens", answer_tokens)
            if signal is not None:
                signals.append(signal)

        if not signals:
            return _NONE
        verdict = self._verdict(state, now, signals)
        return AnomalyVerdict("flag", verdict.signals, verdict.retry_after)

    def _length(self, baseline: _Ewma, metric: Metric, tokens: int) -> AnomalySignal | None:
        policy = self.policy
        x = math.log1p(max(tokens, 0))
        signal = None
        if baseline.n >= policy.warmup:
            z = baseline.z(x, _LENGTH_STD_FLOOR)
            if z > policy.z_threshold:
                signal = AnomalySignal(metric, tokens, math.expm1(baseline.mean), z)
                x = baseline.mean + policy.z_threshold * max(math.sqrt(baseline.var), _LENGTH_STD_FLOOR)
        baseline.update(x, policy.alpha)
        return signal

    def _roll_windows(self, state: _KeyState, now: float) -> None:
        window = int(now // self.policy.window_s)
        if window <= state.window:
            return
        policy = self.policy
        rate = state.rate
        count = float(state.count)
        if rate.n >= policy.warmup:
            ceiling = rate.mean + policy.z_threshold * max(math.sqrt(rate.var), math.sqrt(max(rate.mean, 1.0)))
            count = min(count, ceiling)
        rate.update(count, policy.alpha)
        for _ in range(min(window - state.window - 1, _MAX_IDLE_UPDATES)):
            rate.update(0.0, policy.alpha)
        state.window = window
        state.count = 0

    def _state(self, key: str, now: float) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = _KeyState(window=int(now // self.policy.window_s))
            self._keys[key] = state
            if len(self._keys) > self.policy.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        return state

    def _verdict(self, state: _KeyState, now: float, signals: list[AnomalySignal]) -> AnomalyVerdict:
        enforced = _ENFORCED.get(self.policy.action)
        if signals:
            if enforced is not None:
                state.penalty_until = max(state.penalty_until, now + self.policy.cooldown_s)
                return AnomalyVerdict(enforced, tuple(signals), state.penalty_until - now)
            return AnomalyVerdict("flag", tuple(signals))
        if enforced is not None and now < state.penalty_until:
            return AnomalyVerdict(enforced, (), state.penalty_until - now)
        return _NONE
