"""Traces, metrics and drift: how operators see why a call was slow, failed or cost what it did, and whether a
model's answers are changing.

- `attributes`: the span attribute and metric label names (OpenTelemetry GenAI conventions plus `llm_gateway.*`).
- `tracing`: builds the TracerProvider from OTEL_* variables and the `observe:` config; batch export off the path.
- `propagation`: W3C trace context in from gRPC metadata, out to upstream HTTP headers.
- `spans`: the pipeline's facade over spans, a call span with a child per stage and attempt; free when tracing is off.
- `metrics`: `GatewayMetrics`, the Prometheus series, one method per pipeline event.
- `metrics_server`: the /metrics HTTP endpoint on the asyncio loop.
- `drift`: `DriftMonitor`, per (model, provider) rolling windows tested against their baseline; `model_health`.
- `refusal`: `is_refusal`, whether an answer declines the request (for the refusal rate).
- `savings`: `cheapest_alternatives`, what each usage group would have cost on the cheapest capable model.
"""
