"""What observing a call costs on the request path: the span facade with tracing off (and on), recording a call's
metrics, and rendering /metrics. Each group holds its references, measured in the same run.

.venv/bin/pytest benches/observe/bench_observe.py --benchmark-enable --benchmark-columns=min,median,max,ops \
    --benchmark-sort=name

One round is one whole call's worth of events, as the pipeline will make them:
- spans: start_call (with metadata), 4 stages, set_identity, set_request, set_route, one attempt with inject and end,
  set_result, end.
- metrics: observe_call_started, two observe_attempt (a failure and a fallback), observe_call with tokens and cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway.chat import ChatRequest, ChatResult, Message, Usage
from gateway.observe.metrics import DURATION_BUCKETS, TOKEN_BUCKETS, GatewayMetrics
from gateway.observe.propagation import inject_headers
from gateway.observe.spans import CallTracer

METADATA: list[tuple[str, str | bytes]] = [
    ("authorization", "Bearer sk-abc"),
    ("x-request-id", "r1"),
    ("user-agent", "grpc-python/1.70"),
]
REQUEST = ChatRequest(model="smart", messages=[Message("user", "hi")], max_tokens=64, temperature=0.2)
USAGE = Usage(120, 30)
RESULT = ChatResult("msg_1", "claude-sonnet-1", "hello", "stop", USAGE)
STAGES = ("authenticate", "guardrails.input", "route", "guardrails.output")


def _facade_call(tracer: CallTracer) -> None:
    call = tracer.start_call("Chat", METADATA, request_id="0190abc")
    for name in STAGES:
        with call.stage(name):
            pass
    call.set_identity(team="search", key_id="key_1")
    call.set_request(REQUEST)
    call.set_route("smart")
    attempt = call.start_attempt(provider="anthropic", model="claude-sonnet", attempt=0)
    headers: dict[str, str] = {}
    attempt.inject(headers)
    attempt.end(outcome="ok", result=RESULT)
    call.set_result(provider="anthropic", model="claude-sonnet", result=RESULT, usage=USAGE, cost_usd=0.001)
    call.end()


def _raw_api_call(tracer: trace.Tracer) -> None:
    """The same spans through the OpenTelemetry API directly (a no-op tracer when no SDK is installed)."""
    with tracer.start_as_current_span("llmgateway.v1.Gateway/Chat", kind=trace.SpanKind.SERVER) as span:
        for name in STAGES:
            with tracer.start_as_current_span(name):
                pass
        span.set_attribute("gen_ai.request.model", "smart")
        with tracer.start_as_current_span("chat claude-sonnet", kind=trace.SpanKind.CLIENT) as attempt:
            headers: dict[str, str] = {}
            inject_headers(headers, trace.set_span_in_context(attempt))
            attempt.set_attribute("gen_ai.usage.output_tokens", 30)


def _nothing(*_: Any) -> None:
    return None


def _empty_call(_: object) -> None:
    """The floor: one Python call per event the facade receives (14), each doing nothing."""
    for _ in range(14):
        _nothing()


class _DropExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@pytest.mark.benchmark(group="spans, tracing off")
@pytest.mark.parametrize(
    ("name", "run"),
    [
        ("reference: 14 empty function calls", lambda: _empty_call(None)),
        ("facade CallTracer(None)", lambda: _facade_call(CallTracer(None))),
        ("reference: raw OTel API, no SDK (NoOpTracer)", lambda: _raw_api_call(trace.NoOpTracer())),
    ],
)
def test_spans_off(benchmark: BenchmarkFixture, name: str, run: Callable[[], None]) -> None:
    benchmark(run)


@pytest.mark.benchmark(group="spans, tracing on (100% sampled, batch export to a dropping exporter)")
@pytest.mark.parametrize("which", ["facade", "reference: raw OTel API"])
def test_spans_on(benchmark: BenchmarkFixture, which: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DropExporter(), max_queue_size=1 << 16))
    try:
        if which == "facade":
            tracer = CallTracer(provider)
            benchmark(_facade_call, tracer)
        else:
            benchmark(_raw_api_call, provider.get_tracer("bench"))
    finally:
        provider.shutdown()


def _gateway_metrics_call(metrics: GatewayMetrics) -> None:
    metrics.observe_call_started("chat")
    metrics.observe_attempt(
        route="smart", model="gpt-4o", provider="openai", retry=0, fallback=False, outcome="error",
        code="UNAVAILABLE", duration_s=0.05,
    )  # fmt: skip
    metrics.observe_attempt(
        route="smart", model="claude-sonnet", provider="anthropic", retry=0, fallback=True, outcome="ok", code="",
        duration_s=0.3,
    )  # fmt: skip
    metrics.observe_call(
        kind="chat", route="smart", model="claude-sonnet", provider="anthropic", code="OK", duration_s=0.4,
        input_tokens=120, output_tokens=30, cost_usd=0.001,
    )  # fmt: skip


class _RawSeries:
    """The same series driven through prometheus_client's labels() on every event, as most code does."""

    def __init__(self) -> None:
        r = CollectorRegistry()
        self.requests = Counter("requests", "", ("kind", "route", "model", "provider", "code"), registry=r)
        self.duration = Histogram(
            "duration", "", ("kind", "route", "model", "provider", "code"), buckets=DURATION_BUCKETS, registry=r
        )
        self.tokens = Histogram(
            "tokens", "", ("op", "provider", "model", "type", "route"), buckets=TOKEN_BUCKETS, registry=r
        )
        self.cost = Counter("cost", "", ("route", "model", "provider"), registry=r)
        self.attempts = Counter("attempts", "", ("provider", "model", "outcome", "code"), registry=r)
        self.op_duration = Histogram(
            "op", "", ("op", "provider", "model", "error"), buckets=DURATION_BUCKETS, registry=r
        )
        self.fallbacks = Counter("fallbacks", "", ("route",), registry=r)
        from prometheus_client import Gauge

        self.in_flight = Gauge("in_flight", "", ("kind",), registry=r)

    def call(self) -> None:
        self.in_flight.labels("chat").inc()
        self.attempts.labels("openai", "gpt-4o", "error", "UNAVAILABLE").inc()
        self.op_duration.labels("chat", "openai", "gpt-4o", "UNAVAILABLE").observe(0.05)
        self.attempts.labels("anthropic", "claude-sonnet", "ok", "").inc()
        self.op_duration.labels("chat", "anthropic", "claude-sonnet", "").observe(0.3)
        self.fallbacks.labels("smart").inc()
        self.in_flight.labels("chat").dec()
        labels = ("chat", "smart", "claude-sonnet", "anthropic", "OK")
        self.requests.labels(*labels).inc()
        self.duration.labels(*labels).observe(0.4)
        self.tokens.labels("chat", "anthropic", "claude-sonnet", "input", "smart").observe(120)
        self.tokens.labels("chat", "anthropic", "claude-sonnet", "output", "smart").observe(30)
        self.cost.labels("smart", "claude-sonnet", "anthropic").inc(0.001)


def _multiprocess_metrics(folder: str, monkeypatch: pytest.MonkeyPatch) -> GatewayMetrics:
    """GatewayMetrics as a worker of --workers builds it: values in prometheus_client's multiprocess files (the
    value class is chosen when prometheus_client is imported; swapped here for this one registry)."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", folder)
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())
    return GatewayMetrics(models=["gpt-4o", "claude-sonnet"], routes=["smart"])


@pytest.mark.benchmark(group="metrics, one call's events")
@pytest.mark.parametrize(
    "which",
    [
        "GatewayMetrics",
        "GatewayMetrics, multiprocess files (--workers)",
        "reference: raw prometheus_client labels()",
        "reference: empty",
    ],
)
def test_metrics_call(benchmark: BenchmarkFixture, which: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if which == "GatewayMetrics":
        benchmark(_gateway_metrics_call, GatewayMetrics(models=["gpt-4o", "claude-sonnet"], routes=["smart"]))
    elif which.startswith("GatewayMetrics, multiprocess"):
        benchmark(_gateway_metrics_call, _multiprocess_metrics(str(tmp_path), monkeypatch))
    elif which.startswith("reference: raw"):
        benchmark(_RawSeries().call)
    else:
        benchmark(_empty_call, None)


def _populated(models: int) -> GatewayMetrics:
    """A busy gateway's registry: `models` models on 4 providers, 3 routes, 4 status codes, both call kinds."""
    metrics = GatewayMetrics()
    for m in range(models):
        provider = f"p{m % 4}"
        for route in ("r0", "r1", "r2"):
            for code in ("OK", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
                for kind in ("chat", "stream"):
                    metrics.observe_call_started(kind)
                    metrics.observe_call(
                        kind=kind, route=route, model=f"m{m}", provider=provider, code=code, duration_s=0.2,
                        input_tokens=10, output_tokens=5, cost_usd=0.001,
                    )  # fmt: skip
            metrics.observe_first_chunk(route=route, model=f"m{m}", provider=provider, seconds=0.1)
            metrics.observe_attempt(
                route=route, model=f"m{m}", provider=provider, retry=1, fallback=True, outcome="ok", code="",
                duration_s=0.2,
            )  # fmt: skip
        metrics.set_breaker_state(provider=provider, model=f"m{m}", state="closed")
    return metrics


@pytest.mark.benchmark(group="metrics, render /metrics (generate_latest)")
@pytest.mark.parametrize("models", [5, 20])
def test_render(benchmark: BenchmarkFixture, models: int) -> None:
    metrics = _populated(models)
    body = benchmark(generate_latest, metrics.registry)
    benchmark.extra_info["bytes"] = len(body)
    benchmark.extra_info["lines"] = body.count(b"\n")
