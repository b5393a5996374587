"""Metrics scraped over HTTP from the /metrics endpoint after a known sequence of events: exactly those values."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from gateway.observe.metrics import DURATION_BUCKETS, OTHER, TOKEN_BUCKETS, GatewayMetrics
from gateway.observe.metrics_server import DEFAULT_ADDRESS, metrics_address, parse_address, start_metrics_server


def _metrics() -> GatewayMetrics:
    return GatewayMetrics(
        models=["gpt-4o", "claude-sonnet"], providers=["openai", "anthropic"], routes=["smart"], teams=["search"]
    )


async def _scrape(metrics: GatewayMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    server = await start_metrics_server(metrics.registry, "127.0.0.1:0")
    try:
        async with aiohttp.ClientSession() as session, session.get(server.url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            text = await response.text()
        async with aiohttp.ClientSession() as session, session.get(server.url.replace("/metrics", "/")) as missing:
            assert missing.status == 404
    finally:
        await server.close()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


CALL = {
    "kind": "chat",
    "route": "smart",
    "model": "claude-sonnet",
    "provider": "anthropic",
    "code": "OK",
    "api": "grpc",
}
GEN_AI = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "anthropic", "gen_ai_request_model": "claude-sonnet"}


async def test_a_known_sequence_of_events_scrapes_to_exact_values() -> None:
    metrics = _metrics()
    # Two chat calls served by anthropic after one failed openai attempt each, and a stream; one call denied.
    for _ in range(2):
        metrics.observe_call_started("chat")
        metrics.observe_attempt(
            route="smart",
            model="gpt-4o",
            provider="openai",
            retry=0,
            fallback=False,
            outcome="error",
            code="UNAVAILABLE",
            duration_s=0.05,
        )
        metrics.observe_attempt(
            route="smart",
            model="claude-sonnet",
            provider="anthropic",
            retry=0,
            fallback=True,
            outcome="ok",
            code="",
            duration_s=0.3,
        )
        metrics.observe_call(
            kind="chat",
            route="smart",
            model="claude-sonnet",
            provider="anthropic",
            code="OK",
            duration_s=0.4,
            input_tokens=100,
            output_tokens=20,
            cost_usd=0.25,
        )
    metrics.observe_call_started("stream")
    metrics.observe_first_chunk(route="smart", model="claude-sonnet", provider="anthropic", seconds=0.15)
    metrics.observe_call_started("chat")
    metrics.observe_call(kind="chat", route="", model="", provider="", code="PERMISSION_DENIED", duration_s=0.001)
    metrics.observe_attempt(
        route="smart",
        model="gpt-4o",
        provider="openai",
        retry=1,
        fallback=False,
        outcome="ok",
        code="",
        duration_s=0.2,
    )
    metrics.observe_cache(kind="exact", hit=True)
    metrics.observe_cache(kind="exact", hit=False)
    metrics.observe_cache(kind="semantic", hit=False)
    metrics.observe_guardrails(
        [{"type": "pii", "kind": "EMAIL_ADDRESS", "action": "redact", "count": 3}, {"type": "pii", "action": "redact"}]
    )
    metrics.set_breaker_state(provider="openai", model="gpt-4o", state="open")
    metrics.set_breaker_state(provider="anthropic", model="claude-sonnet", state="closed")
    metrics.set_queue_depth("smart", 4)
    metrics.observe_queue_wait("smart", 0.03)
    metrics.set_budget_remaining("search", 12.5)

    samples = await _scrape(metrics)
    expected = {
        ("llm_gateway_requests_total", _labels(**CALL)): 2.0,
        (
            "llm_gateway_requests_total",
            _labels(kind="chat", route="", model="", provider="", code="PERMISSION_DENIED", api="grpc"),
        ): 1.0,
        ("llm_gateway_request_duration_seconds_count", _labels(**CALL)): 2.0,
        ("llm_gateway_request_duration_seconds_sum", _labels(**CALL)): 0.8,
        ("llm_gateway_request_duration_seconds_bucket", _labels(**CALL, le="0.32")): 0.0,
        ("llm_gateway_request_duration_seconds_bucket", _labels(**CALL, le="0.64")): 2.0,
        ("llm_gateway_in_flight_requests", _labels(kind="chat")): 0.0,
        ("llm_gateway_in_flight_requests", _labels(kind="stream")): 1.0,
        ("gen_ai_client_token_usage_sum", _labels(**GEN_AI, gen_ai_token_type="input", route="smart")): 200.0,
        ("gen_ai_client_token_usage_count", _labels(**GEN_AI, gen_ai_token_type="input", route="smart")): 2.0,
        ("gen_ai_client_token_usage_sum", _labels(**GEN_AI, gen_ai_token_type="output", route="smart")): 40.0,
        (
            "gen_ai_client_token_usage_bucket",
            _labels(**GEN_AI, gen_ai_token_type="output", route="smart", le="16.0"),
        ): 0.0,
        (
            "gen_ai_client_token_usage_bucket",
            _labels(**GEN_AI, gen_ai_token_type="output", route="smart", le="64.0"),
        ): 2.0,
        ("llm_gateway_cost_usd_total", _labels(route="smart", model="claude-sonnet", provider="anthropic")): 0.5,
        ("gen_ai_server_time_to_first_token_seconds_count", _labels(**GEN_AI, route="smart")): 1.0,
        ("gen_ai_server_time_to_first_token_seconds_sum", _labels(**GEN_AI, route="smart")): 0.15,
        ("gen_ai_client_operation_duration_seconds_count", _labels(**GEN_AI, error_type="")): 2.0,
        ("gen_ai_client_operation_duration_seconds_sum", _labels(**GEN_AI, error_type="")): 0.6,
        (
            "gen_ai_client_operation_duration_seconds_count",
            _labels(
                gen_ai_operation_name="chat",
                gen_ai_provider_name="openai",
                gen_ai_request_model="gpt-4o",
                error_type="UNAVAILABLE",
            ),
        ): 2.0,
        (
            "llm_gateway_provider_attempts_total",
            _labels(provider="openai", model="gpt-4o", outcome="error", code="UNAVAILABLE"),
        ): 2.0,
        ("llm_gateway_provider_attempts_total", _labels(provider="openai", model="gpt-4o", outcome="ok", code="")): 1.0,
        (
            "llm_gateway_provider_attempts_total",
            _labels(provider="anthropic", model="claude-sonnet", outcome="ok", code=""),
        ): 2.0,
        ("llm_gateway_retries_total", _labels(provider="openai", model="gpt-4o")): 1.0,
        ("llm_gateway_fallbacks_total", _labels(route="smart")): 2.0,
        ("llm_gateway_cache_lookups_total", _labels(kind="exact", result="hit")): 1.0,
        ("llm_gateway_cache_lookups_total", _labels(kind="exact", result="miss")): 1.0,
        ("llm_gateway_cache_lookups_total", _labels(kind="semantic", result="miss")): 1.0,
        ("llm_gateway_guardrail_actions_total", _labels(type="pii", action="redact")): 4.0,
        ("llm_gateway_circuit_breaker_state", _labels(provider="openai", model="gpt-4o")): 2.0,
        ("llm_gateway_circuit_breaker_state", _labels(provider="anthropic", model="claude-sonnet")): 0.0,
        ("llm_gateway_queue_depth", _labels(route="smart")): 4.0,
        ("llm_gateway_queue_wait_seconds_count", _labels(route="smart")): 1.0,
        ("llm_gateway_budget_remaining_usd", _labels(team="search")): 12.5,
    }
    got = {key: samples.get(key) for key in expected}
    assert got == pytest.approx(expected)
    # A denied call reached no provider: no tokens, cost or first-chunk series for it.
    assert not [key for key in samples if key[0].startswith("gen_ai_") and ("gen_ai_provider_name", "") in key[1]]
    assert not [key for key in samples if key[0] == "llm_gateway_cost_usd_total" and ("provider", "") in key[1]]


async def test_label_values_outside_their_sets_count_as_other() -> None:
    metrics = _metrics()
    for i in range(50):
        # A caller's made-up model, a provider the catalog does not have, a code gRPC does not define.
        metrics.observe_call_started("chat")
        metrics.observe_call(
            kind="chat", route=f"route-{i}", model=f"model-{i}", provider=f"p{i}", code=f"E{i}", duration_s=0.1
        )
    metrics.observe_call_started("bogus")
    metrics.observe_call(kind="bogus", route="", model="", provider="", code="OK", duration_s=0.1)
    metrics.set_budget_remaining("team-from-nowhere", 1.0)
    samples = await _scrape(metrics)
    requests = {labels: value for (name, labels), value in samples.items() if name == "llm_gateway_requests_total"}
    assert requests == {
        _labels(kind="chat", route=OTHER, model=OTHER, provider=OTHER, code=OTHER, api="grpc"): 50.0,
        _labels(kind=OTHER, route="", model="", provider="", code="OK", api="grpc"): 1.0,
    }
    assert samples[("llm_gateway_budget_remaining_usd", _labels(team=OTHER))] == 1.0


def test_a_calls_series_count_as_prometheus_clients_own_methods_do() -> None:
    """A call's end writes its series' values directly (not through Counter.inc and Histogram.observe): the same
    observations give the same samples, on every bucket bound, between bounds and past the last."""
    metrics = _metrics()
    reference = CollectorRegistry()
    duration = Histogram("duration", "", buckets=DURATION_BUCKETS, registry=reference)
    tokens = Histogram("tokens", "", buckets=TOKEN_BUCKETS, registry=reference)
    cost = Counter("cost", "", registry=reference)
    attempt = Histogram("attempt", "", buckets=DURATION_BUCKETS, registry=reference)
    durations = [0.0, *DURATION_BUCKETS, 0.015, 3.0, 100.0, float("inf")]
    counts = [0, 1, *TOKEN_BUCKETS, 2, 5000, 10**9]
    for seconds, count in zip(durations, counts[: len(durations)], strict=True):
        metrics.observe_call_started("chat")
        metrics.observe_call(**CALL, duration_s=seconds, input_tokens=count, output_tokens=count + 1, cost_usd=0.25)
        metrics.observe_attempt(
            route="smart",
            model="claude-sonnet",
            provider="anthropic",
            retry=0,
            fallback=False,
            outcome="ok",
            code="",
            duration_s=seconds,
        )
        duration.observe(seconds)
        tokens.observe(count)
        cost.inc(0.25)
        attempt.observe(seconds)

    def buckets(registry: CollectorRegistry, name: str, **labels: str) -> list[float | None]:
        values = [registry.get_sample_value(f"{name}_bucket", {**labels, "le": _le(bound)}) for bound in bounds]
        return [
            *values,
            registry.get_sample_value(f"{name}_sum", labels),
            registry.get_sample_value(f"{name}_count", labels),
        ]

    ours = metrics.registry
    bounds = [*DURATION_BUCKETS, float("inf")]
    assert buckets(ours, "llm_gateway_request_duration_seconds", **CALL) == buckets(reference, "duration")
    assert buckets(ours, "gen_ai_client_operation_duration_seconds", **GEN_AI, error_type="") == buckets(
        reference, "attempt"
    )
    bounds = [*TOKEN_BUCKETS, float("inf")]
    assert buckets(ours, "gen_ai_client_token_usage", **GEN_AI, gen_ai_token_type="input", route="smart") == buckets(
        reference, "tokens"
    )
    assert ours.get_sample_value(
        "llm_gateway_cost_usd_total", {"route": "smart", "model": "claude-sonnet", "provider": "anthropic"}
    ) == reference.get_sample_value("cost_total")
    assert ours.get_sample_value("llm_gateway_in_flight_requests", {"kind": "chat"}) == 0.0
    assert ours.get_sample_value("llm_gateway_requests_total", CALL) == len(durations)


def _le(bound: float) -> str:
    """A bucket's `le` label as prometheus_client writes it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


async def test_an_open_label_is_capped() -> None:
    metrics = GatewayMetrics(max_label_values=3)
    for i in range(10):
        metrics.observe_cache(kind="exact", hit=True)
        metrics.set_queue_depth(f"r{i}", i)
    samples = await _scrape(metrics)
    depths = {
        dict(labels)["route"]: value for (name, labels), value in samples.items() if name == "llm_gateway_queue_depth"
    }
    # The first three routes keep their names, the rest share `other` (a gauge: last write wins).
    assert depths == {"r0": 0.0, "r1": 1.0, "r2": 2.0, OTHER: 9.0}


def test_an_unknown_breaker_state_is_a_bug_not_a_series() -> None:
    with pytest.raises(ValueError, match="half_open"):
        _metrics().set_breaker_state(provider="openai", model="gpt-4o", state="ajar")


def test_two_instances_do_not_share_series() -> None:
    first, second = _metrics(), _metrics()
    first.observe_cache(kind="exact", hit=True)
    assert (
        second.registry.get_sample_value("llm_gateway_cache_lookups_total", {"kind": "exact", "result": "hit"}) is None
    )
    assert first.registry.get_sample_value("llm_gateway_cache_lookups_total", {"kind": "exact", "result": "hit"}) == 1.0


def test_metrics_address_flag_then_env_then_default() -> None:
    assert metrics_address("0.0.0.0:9000", {"GATEWAY_METRICS_ADDR": "127.0.0.1:9100"}) == "0.0.0.0:9000"
    assert metrics_address(None, {"GATEWAY_METRICS_ADDR": "127.0.0.1:9100"}) == "127.0.0.1:9100"
    assert metrics_address(None, {}) == DEFAULT_ADDRESS == "127.0.0.1:9464"


@pytest.mark.parametrize(
    ("address", "parsed"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9464", ("::1", 9464)), (":9464", ("0.0.0.0", 9464))],
)
def test_parse_address(address: str, parsed: tuple[str, int]) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["9464", "localhost", "host:port", "host:70000"])
def test_parse_address_rejects_malformed(address: str) -> None:
    with pytest.raises(ValueError, match="metrics address"):
        parse_address(address)


async def test_a_taken_port_raises_oserror() -> None:
    registry = CollectorRegistry()
    server = await start_metrics_server(registry, "127.0.0.1:0")
    try:
        with pytest.raises(OSError):  # noqa: PT011 (the errno varies by platform)
            await start_metrics_server(registry, f"127.0.0.1:{server.port}")
    finally:
        await server.close()


def test_each_gauge_says_how_workers_values_combine() -> None:
    """Under --workers one /metrics shows every worker (prometheus_client's multiprocess mode): counters and
    histograms are summed; a gauge combines the live workers' values as its meaning asks."""
    metrics = _metrics()
    modes = {
        gauge._name: gauge._multiprocess_mode  # type: ignore[attr-defined]
        for gauge in (
            metrics.in_flight,
            metrics.breaker_state,
            metrics.queue_depth,
            metrics.budget_remaining,
            metrics.cache_backend_up,
            metrics.shared_state_up,
        )
    }
    assert modes == {
        "llm_gateway_in_flight_requests": "livesum",  # calls in flight on the machine
        "llm_gateway_circuit_breaker_state": "livemax",  # open if any worker has it open
        "llm_gateway_queue_depth": "livemax",  # each worker's queue has its own bound: the deepest
        "llm_gateway_budget_remaining_usd": "livemin",  # the most spent any worker counts
        "llm_gateway_cache_backend_up": "livemin",  # down if any worker serves without it
        "llm_gateway_shared_state_up": "livemin",
    }
