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
  drift:                           # see docs/drift.md
    window_s: 300
    baseline_windows: 12
    psi_threshold: 0.25
```
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

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


class DriftConfig(Strict):
    """How each model's recent calls are compared with its own past (gateway.observe.drift; docs/drift.md).

    A window closes every `window_s`; a closed window with `min_samples` values of a metric is tested against the
    `baseline_windows` windows before it (less those in which that metric shifted), and a shift must hold
    `consecutive_windows` evaluated windows in a row before it is flagged (noise rarely repeats; a real shift does).
    A shift lasting `rebaseline_windows` windows becomes that metric's new baseline."""

    enabled: bool = True
    window_s: float = Field(default=300.0, gt=0, description="Length of one window in seconds.")
    baseline_windows: int = Field(default=12, ge=1, le=288, description="Closed windows forming the baseline.")
    min_samples: int = Field(default=50, ge=5, description="Values a window needs before a metric is tested.")
    min_baseline_samples: int = Field(default=200, ge=5, description="Values the baseline needs before testing.")
    consecutive_windows: int = Field(default=2, ge=1, le=100, description="Windows a shift must hold to flag.")
    rebaseline_windows: int = Field(
        default=12, ge=1, le=288, description="Windows a shift lasts before it is taken as the new normal."
    )
    psi_threshold: float = Field(
        default=0.25, gt=0, description="Population Stability Index over baseline deciles; 0.25 is a major shift."
    )
    psi_bins: int = Field(default=10, ge=2, le=50, description="Quantile bins of the baseline used for PSI.")
    ks_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="Significance of the two-sample Kolmogorov-Smirnov test."
    )
    ks_min_statistic: float = Field(
        default=0.1, ge=0, le=1, description="Smallest KS distance flagged, however many samples (effect size)."
    )
    chi2_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="Significance of the chi-square test on categories (codes, reasons)."
    )
    min_share_shift: float = Field(
        default=0.05, ge=0, le=1, description="Smallest change of one category's share flagged (0.05 = 5 points)."
    )
    max_route_rules: int = Field(default=32, ge=1, description="Route rules tracked per model; others pool as 'other'.")
    max_models: int = Field(default=1024, ge=1, description="(model, provider) pairs tracked; bounds memory.")

    @model_validator(mode="after")
    def _check_windows(self) -> Self:
        if self.rebaseline_windows < self.consecutive_windows:
            raise ValueError("rebaseline_windows must be >= consecutive_windows (a shift is flagged before it is kept)")
        return self


class ObserveConfig(Strict):
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    trace_url_template: str | None = Field(
        default=None,
        description="The console's link to a call's trace: {trace_id} is replaced by the call's W3C trace id "
        "(e.g. a Jaeger or Tempo trace URL; no link for a call that was neither traced nor sent a traceparent), "
        "{request_id} by the call's id, which every span of the call carries as llm_gateway.request_id (e.g. a "
        "Jaeger search on that tag).",
    )
