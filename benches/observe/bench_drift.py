"""What drift analytics cost per call: DriftMonitor.observe (the per-call path), closing a window (its tests, once
per window per model), and the refusal scorer on a ~200-word answer. Each group holds its reference, same run.

.venv/bin/pytest benches/observe/bench_drift.py --benchmark-enable --benchmark-columns=min,median,max,ops \
    --benchmark-sort=name

- observe: one successful call with every field (latency, ttfc, answer and prompt tokens, finish reason, refusal
  flag, route rule); reference: the same call's `GatewayMetrics.observe_call` (Prometheus series, already on the
  request path) and 10 empty function calls.
- window close: the observe that closes a full window (200 calls, 7 metrics) and tests it against a full baseline
  (12 windows); reference: an observe that closes nothing.
- refusal: `refusal_score` on a 200-word benign answer, the same with trigger words in its first sentence (every
  head pattern runs), and a 200-word refusal; reference: one fixed-string regex
  search over the same answer, and `str.lower()` of it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pytest_benchmark.fixture import BenchmarkFixture

from gateway.config.observe import DriftConfig
from gateway.observe.drift import DriftMonitor
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.refusal import refusal_score

WINDOW_S = 60.0


class _Clock:
    def __init__(self) -> None:
        self.now = 1000 * WINDOW_S

    def __call__(self) -> float:
        return self.now


class _Samples:
    """Drawn ahead, so a round times the monitor, not the random number generator."""

    def __init__(self, seed: int, size: int = 4096) -> None:
        rng = random.Random(seed)
        self.rows = [
            (
                math.exp(rng.gauss(0, 0.3)),
                0.2 * math.exp(rng.gauss(0, 0.3)),
                int(200 * math.exp(rng.gauss(0, 0.4))),
                int(500 * math.exp(rng.gauss(0, 0.5))),
            )
            for _ in range(size)
        ]
        self.i = 0

    def next(self) -> tuple[float, float, int, int]:
        self.i = (self.i + 1) % len(self.rows)
        return self.rows[self.i]


def _observe(monitor: DriftMonitor, samples: _Samples) -> None:
    latency, ttfc, answer, prompt = samples.next()
    monitor.observe(
        model="claude-sonnet",
        provider="anthropic",
        status="OK",
        latency_s=latency,
        ttfc_s=ttfc,
        answer_tokens=answer,
        finish_reason="stop",
        refused=False,
        prompt_tokens=prompt,
        route_rule="smart/long",
    )


def _nothing(*_: Any) -> None:
    return None


def _ten_empty_calls() -> None:
    for _ in range(10):
        _nothing()


@pytest.mark.benchmark(group="drift: per call")
@pytest.mark.parametrize(
    "which", ["DriftMonitor.observe", "reference: GatewayMetrics.observe_call", "reference: 10 empty calls"]
)
def test_observe(benchmark: BenchmarkFixture, which: str) -> None:
    if which == "DriftMonitor.observe":
        monitor = DriftMonitor(DriftConfig(window_s=WINDOW_S), clock=_Clock())
        benchmark(_observe, monitor, _Samples(0))
    elif which.startswith("reference: GatewayMetrics"):
        metrics = GatewayMetrics(CollectorRegistry())

        def call() -> None:
            metrics.observe_call(
                kind="chat", route="smart", model="claude-sonnet", provider="anthropic", code="OK", duration_s=0.4,
                input_tokens=120, output_tokens=30, cost_usd=0.001,
            )  # fmt: skip

        benchmark(call)
    else:
        benchmark(_ten_empty_calls)


@pytest.mark.benchmark(group="drift: the call that closes a window")
@pytest.mark.parametrize("closes", [True, False], ids=["closes and tests a window", "reference: closes nothing"])
def test_window_close(benchmark: BenchmarkFixture, closes: bool) -> None:
    clock = _Clock()
    monitor = DriftMonitor(DriftConfig(window_s=WINDOW_S), clock=clock)
    rng = _Samples(1)
    for _ in range(14):  # a full baseline and a last window
        for _ in range(200):
            _observe(monitor, rng)
        clock.now += WINDOW_S

    def fill() -> tuple[tuple[DriftMonitor, _Samples], dict[str, Any]]:
        for _ in range(200):
            _observe(monitor, rng)
        if closes:
            clock.now += WINDOW_S
        return (monitor, rng), {}

    benchmark.pedantic(_observe, setup=fill, rounds=200, warmup_rounds=5)
    health = monitor.model_health("claude-sonnet", "anthropic")
    assert health is not None
    assert health.baseline["latency_s"].count >= 2000  # the tests did run against a full baseline


_BENIGN = (
    "Great question. A connection pool keeps a few open connections to the database and lends them to requests, so "
    "each request skips the handshake. Size it to the database's connection limit divided by the number of app "
    "instances, and leave headroom for migrations and admin sessions. Set a timeout on acquiring a connection, so "
    "that under overload requests fail fast instead of piling up behind each other, and measure the wait: if it "
    "grows while queries stay fast, the pool is too small; if queries slow down first, the database is the limit "
    "and a bigger pool makes it worse. Recycle connections after an hour or so to survive failovers and firewalls "
    "that drop idle sessions. In tests, use a pool of one to catch code that holds two connections at once, which "
    "deadlocks under load. Finally, log the pool's size, in-use count and wait time, so the next incident starts "
    "with numbers instead of guesses. If you share your configuration I can suggest concrete values for it too: the "
    "number of instances, the database's limit and a typical query time are enough to start."
)
_REFUSAL = (
    "I'm sorry, but I can't help with writing that phishing email. Phishing is used to steal passwords, money and "
    "identities from real people, and the harm falls on those who can least afford it: the elderly, small "
    "businesses, hospitals. Even as an exercise, a convincing template is easy to reuse for an actual attack. If "
    "you are running an authorised security awareness programme, your organisation's security team or a vendor "
    "that specialises in simulated phishing can provide approved material, with consent and reporting built in. "
    "I am happy to help with related topics instead: how to recognise phishing, how to set up SPF, DKIM and DMARC "
    "so that forged mail is rejected, how to run a tabletop exercise, or how to write guidance for staff that "
    "explains what to do when they click on something suspicious. Tell me which of these would be most useful "
    "and I will go into detail. I can also point you to public reports from national cyber security agencies, "
    "which describe current phishing campaigns, the lures they use and the signs that give them away, and to free "
    "training material that many organisations already use with their staff every year."
)
_BENIGN_TRIGGERED = "I can't stress enough that the rules are simple. " + _BENIGN
"""The worst benign case: trigger words in its head, so every head pattern runs."""
_FIXED = re.compile(r"\bI can't help with\b")


@pytest.mark.benchmark(group="refusal: one ~200-word answer")
@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("refusal_score, benign", lambda: refusal_score(_BENIGN)),
        ("refusal_score, refusal", lambda: refusal_score(_REFUSAL)),
        ("refusal_score, benign with trigger words in its head", lambda: refusal_score(_BENIGN_TRIGGERED)),
        ("reference: one fixed-string regex search, benign", lambda: _FIXED.search(_BENIGN)),
        ("reference: str.lower(), benign", lambda: _BENIGN.lower()),
    ],
)
def test_refusal(benchmark: BenchmarkFixture, name: str, run: Callable[[], object]) -> None:
    assert len(_BENIGN.split()) >= 180
    assert len(_REFUSAL.split()) >= 180
    benchmark(run)
