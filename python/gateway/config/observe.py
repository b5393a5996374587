"""The schema of `observe:`: where traces go and where metrics are served.

Every field left unset falls back to the standard OpenTelemetry environment variable named beside it, so an operator
who already exports OTEL_* for other services configures the gateway the same way; a value set here wins over the
environment.

```yaml
observe:
  tracing:
    exporter: otlp                 # OTEL_TRACES_EXPORTER: otlp | console | none (default none)
    endpoint: http://collector:4317  # OTEL_EXPORTER_OTLP_ENDPOINT
    protocol: grpc                 # OTEL_EXPORTER_OTLP_PROTOCOL: grpc | http/protobuf
    service_name: llm-gateway      # OTEL_SERVICE_NAME
    resource_attributes: {deployment.environment: prod}  # OTEL_RESOURCE_ATTRIBUTES
    sampler: parentbased_traceidratio  # OTEL_TRACES_SAMPLER
    sampler_arg: 0.1               # OTEL_TRACES_SAMPLER_ARG
    export_timeout_s: 5            # OTEL_EXPORTER_OTLP_TIMEOUT (there in milliseconds)
  metrics:
    address: 127.0.0.1:9464        # --metrics-address / GATEWAY_METRICS_ADDR; "" turns the endpoint off
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import Strict

TracesExporter = Literal["otlp", "console", "none"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
SamplerName = Literal[
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
]


class TracingConfig(Strict):
    exporter: TracesExporter | None = None
    endpoint: str | None = Field(default=None, min_length=1)
    protocol: OtlpProtocol | None = None
    service_name: str | None = Field(default=None, min_length=1)
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    """Merged over OTEL_RESOURCE_ATTRIBUTES; these win on a clash."""
    sampler: SamplerName | None = None
    sampler_arg: float | None = Field(default=None, ge=0.0, le=1.0)
    export_timeout_s: float | None = Field(default=None, gt=0.0, le=60.0)
    """How long one batch export may take before it is dropped: bounds what a down collector costs at shutdown."""
    record_content: bool = False
    """Whether spans may carry prompt and answer text at all; even then only text the caller passes (redacted)."""


class MetricsConfig(Strict):
    address: str | None = None
    """host:port of the /metrics endpoint; None falls back to GATEWAY_METRICS_ADDR, then 127.0.0.1:9464."""


class ObserveConfig(Strict):
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
