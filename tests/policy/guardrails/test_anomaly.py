"""Usage anomalies with an injected clock: a burst fires and steady jittered traffic does not; prompt and answer
length outliers, a run of long answers, an error spike; flag, throttle and block with their cooldown."""

from __future__ import annotations

import random

import pytest

from gateway.config.guardrails import AnomalyPolicy
from gateway.errors import ErrorKind, PermissionDenied, RateLimited
from gateway.policy.guardrails import AnomalyDetector, AnomalyVerdict, GuardrailAction


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _detector(**policy: object) -> tuple[AnomalyDetector, FakeClock]:
    clock = FakeClock()
    return AnomalyDetector(AnomalyPolicy.model_validate(policy), clock=clock), clock


def _steady(
    detector: AnomalyDetector, clock: FakeClock, rng: random.Random, *, seconds: float, rate: float, key: str = "k"
) -> list[AnomalyVerdict]:
    """Poisson arrivals at `rate` per second with jittered prompt and answer lengths around 400 and 250 tokens."""
    verdicts = []
    end = clock.now + seconds
    while clock.now < end:
        clock.now += rng.expovariate(rate)
        verdicts.append(detector.observe_request(key, int(rng.gauss(400, 60))))
        verdicts.append(detector.observe_answer(key, max(1, int(rng.gauss(250, 50)))))
    return verdicts


@pytest.mark.parametrize("seed", range(5))
def test_steady_jittered_traffic_is_never_flagged(seed: int) -> None:
    detector, clock = _detector()
    verdicts = _steady(detector, clock, random.Random(seed), seconds=3_600, rate=2.0)
    assert len(verdicts) > 10_000
    assert [v for v in verdicts if v.action != "none"] == []


@pytest.mark.parametrize("seed", range(3))
def test_a_burst_is_flagged(seed: int) -> None:
    rng = random.Random(seed)
    detector, clock = _detector()
    _steady(detector, clock, rng, seconds=600, rate=1.0)
    flagged = []
    for _ in range(60):  # 60 requests in 3 seconds against ~10 per 10-second window
        clock.now += 0.05
        verdict = detector.observe_request("k", 400)
        if verdict.signals:
            flagged.append(verdict)
    assert flagged
    signal = flagged[0].signals[0]
    assert signal.metric == "request_rate"
    assert signal.z > 4.0
    assert 5 < signal.baseline < 15
    assert flagged[0].action == "flag"
    assert flagged[0].actions == (GuardrailAction("usage", "anomaly", "request_rate", "flag"),)
    flagged[0].enforce()  # flag does not raise


def test_keys_have_their_own_baselines() -> None:
    rng = random.Random(1)
    detector, clock = _detector()
    _steady(detector, clock, rng, seconds=600, rate=1.0, key="busy")
    # A new key is not judged before its warmup, however it starts.
    verdicts = [detector.observe_request("new", 400) for _ in range(50)]
    assert all(v.action == "none" for v in verdicts)
    assert len(detector) == 2


def test_a_huge_prompt_is_flagged_and_does_not_become_normal() -> None:
    rng = random.Random(2)
    detector, clock = _detector()
    _steady(detector, clock, rng, seconds=300, rate=1.0)
    clock.now += 1
    first = detector.observe_request("k", 40_000)
    assert [s.metric for s in first.signals] == ["prompt_tokens"]
    assert first.signals[0].value == 40_000
    assert 300 < first.signals[0].baseline < 500
    # Clipped into the baseline: the next huge prompt is still an outlier.
    clock.now += 1
    assert detector.observe_request("k", 40_000).signals


def test_a_run_of_long_answers_is_flagged() -> None:
    rng = random.Random(3)
    detector, clock = _detector(long_answer_z=2.0, long_answer_run=4)
    _steady(detector, clock, rng, seconds=300, rate=1.0)
    metrics = []
    for _ in range(4):
        clock.now += 1
        detector.observe_request("k", 400)
        # ~2.2x the usual 250 tokens: unusual (z > 2), not extreme alone (z < 4).
        metrics.append([s.metric for s in detector.observe_answer("k", 550).signals])
    assert metrics[:3] == [[], [], []]
    assert metrics[3] == ["long_answers"]


def test_an_error_spike_is_flagged() -> None:
    rng = random.Random(4)
    detector, clock = _detector()
    _steady(detector, clock, rng, seconds=300, rate=1.0)
    flagged = []
    for _ in range(5):
        clock.now += 1
        detector.observe_request("k", 400)
        flagged.append([s.metric for s in detector.observe_answer("k", 0, error=True).signals])
    # One or two failures are bad luck; the third in a row from a clean history is a spike.
    assert flagged[:3] == [[], [], ["error_rate"]]
    assert flagged[3] == ["error_rate"]


def test_throttle_raises_rate_limited_and_cools_down() -> None:
    rng = random.Random(5)
    detector, clock = _detector(action="throttle", cooldown_s=30)
    _steady(detector, clock, rng, seconds=600, rate=1.0)
    clock.now += 1
    verdict = detector.observe_request("k", 50_000)
    assert verdict.action == "throttle"
    with pytest.raises(RateLimited) as caught:
        verdict.enforce()
    assert caught.value.kind is ErrorKind.RESOURCE_EXHAUSTED
    assert caught.value.reason == "ANOMALY_THROTTLED"
    assert caught.value.retry_after == pytest.approx(30)
    assert caught.value.metadata == {"metrics": "prompt_tokens"}
    # An ordinary request during the cooldown is still throttled, with the time left.
    clock.now += 10
    during = detector.observe_request("k", 400)
    assert during.action == "throttle"
    assert during.signals == ()
    assert during.retry_after == pytest.approx(20)
    assert during.actions == (GuardrailAction("usage", "anomaly", "cooldown", "throttle"),)
    clock.now += 21
    assert detector.observe_request("k", 400).action == "none"


def test_block_raises_permission_denied() -> None:
    rng = random.Random(6)
    detector, clock = _detector(action="block")
    _steady(detector, clock, rng, seconds=600, rate=1.0)
    clock.now += 1
    verdict = detector.observe_request("k", 50_000)
    with pytest.raises(PermissionDenied) as caught:
        verdict.enforce()
    assert caught.value.reason == "ANOMALY_BLOCKED"


def test_answer_signals_only_flag_but_start_the_cooldown() -> None:
    rng = random.Random(7)
    detector, clock = _detector(action="block", cooldown_s=60)
    _steady(detector, clock, rng, seconds=300, rate=1.0)
    clock.now += 1
    detector.observe_request("k", 400)
    answer = detector.observe_answer("k", 200_000)
    assert answer.action == "flag"
    answer.enforce()
    clock.now += 1
    assert detector.observe_request("k", 400).action == "block"


def test_off_observes_nothing() -> None:
    detector, _ = _detector(action="off")
    assert detector.observe_request("k", 10).action == "none"
    assert detector.observe_answer("k", 10).action == "none"
    assert len(detector) == 0


def test_least_recently_seen_key_is_dropped() -> None:
    detector, _ = _detector(max_keys=2)
    for key in ("a", "b", "a", "c"):
        detector.observe_request(key, 10)
    assert len(detector) == 2
