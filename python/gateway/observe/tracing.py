"""Tracing, configured the standard way: OTEL_* environment variables, overridden by `observe.tracing`.

Ended calls' spans go to a sink (observe/span_sinks.py): ending a call only appends its spans to an in-memory
queue, a worker thread exports batches, and when the queue is full (a collector that is down or slow) new spans are
dropped. The request path never waits on a collector.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    DEFAULT_OFF,
    DEFAULT_ON,
    ParentBasedTraceIdRatio,
    Sampler,
    TraceIdRatioBased,
)

from gateway.config.observe import OtlpProtocol, SamplerName, TracesExporter, TracingConfig

if TYPE_CHECKING:
    # The sinks bring the OTLP exporters (~6 MB); imported when tracing is on.
    from gateway.observe.span_sinks import OtlpSink, SdkSink

    Sink = OtlpSink | SdkSink

log = logging.getLogger("gateway.observe")

DEFAULT_SERVICE_NAME: Final = "llm-gateway"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
DEFAULT_EXPORT_TIMEOUT_S: Final = 10.0
_EXPORTERS: Final = ("otlp", "console", "none")
_PROTOCOLS: Final = ("grpc", "http/protobuf")
_SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """What tracing resolved to after the config and the environment: pure data, so it is tested without exporters."""

    exporter: TracesExporter = "none"
    endpoint: str = DEFAULT_GRPC_ENDPOINT
    protocol: OtlpProtocol = "grpc"
    service_name: str = DEFAULT_SERVICE_NAME
    resource_attributes: dict[str, str] = field(default_factory=dict)
    sampler: SamplerName = "parentbased_always_on"
    sampler_arg: float = 1.0
    export_timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S
    record_content: bool = False


def resolve_settings(config: TracingConfig | None = None, environ: Mapping[str, str] | None = None) -> TracingSettings:
    """The config's values where set, else the OTEL_* variables, else the OpenTelemetry defaults.

    Raises ValueError for an environment value outside what the spec allows (a typo must not silently turn tracing
    off); the config's own values are already validated by pydantic."""
    config = config or TracingConfig()
    env = os.environ if environ is None else environ
    exporter = config.exporter or _choice(env, "OTEL_TRACES_EXPORTER", _EXPORTERS, "none")
    protocol = config.protocol or _choice(env, "OTEL_EXPORTER_OTLP_PROTOCOL", _PROTOCOLS, "grpc")
    default_endpoint = DEFAULT_GRPC_ENDPOINT if protocol == "grpc" else DEFAULT_HTTP_ENDPOINT
    endpoint = config.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or default_endpoint
    resource = _parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    resource.update(config.resource_attributes)
    service_name = (
        config.service_name or env.get("OTEL_SERVICE_NAME") or resource.get(SERVICE_NAME) or DEFAULT_SERVICE_NAME
    )
    resource[SERVICE_NAME] = service_name
    sampler = config.sampler or _choice(env, "OTEL_TRACES_SAMPLER", _SAMPLERS, "parentbased_always_on")
    sampler_arg = config.sampler_arg
    if sampler_arg is None:
        sampler_arg = _ratio(env.get("OTEL_TRACES_SAMPLER_ARG"))
    timeout_s = config.export_timeout_s
    if timeout_s is None:
        raw = env.get("OTEL_EXPORTER_OTLP_TIMEOUT")
        timeout_s = _positive_ms(raw) / 1000 if raw else DEFAULT_EXPORT_TIMEOUT_S
    return TracingSettings(
        exporter=exporter,  # type: ignore[arg-type]  # _choice returned one of the literal's values
        endpoint=endpoint,
        protocol=protocol,  # type: ignore[arg-type]
        service_name=service_name,
        resource_attributes=resource,
        sampler=sampler,  # type: ignore[arg-type]
        sampler_arg=sampler_arg,
        export_timeout_s=timeout_s,
        record_content=config.record_content,
    )


def build_sampler(settings: TracingSettings) -> Sampler:
    match settings.sampler:
        case "always_on":
            return ALWAYS_ON
        case "always_off":
            return ALWAYS_OFF
        case "traceidratio":
            return TraceIdRatioBased(settings.sampler_arg)
        case "parentbased_always_on":
            return DEFAULT_ON
        case "parentbased_always_off":
            return DEFAULT_OFF
        case "parentbased_traceidratio":
            return ParentBasedTraceIdRatio(settings.sampler_arg)


def build_exporter(settings: TracingSettings) -> SpanExporter | None:
    """The exporter the settings name; None for `none`. Constructing an OTLP exporter opens no connection; an OTLP
    one sends batches the Rust core encoded (span_sinks.py)."""
    if settings.exporter == "none":
        return None
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name)
    from gateway.observe.span_sinks import otlp_transport

    return otlp_transport(settings.protocol, settings.endpoint, settings.export_timeout_s)


def setup_tracing(
    config: TracingConfig | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    worker: int | None = None,
) -> Sink | None:
    """Where ended calls' spans go, or None when tracing is off (then every span call is a no-op).

    `exporter` replaces the one the settings name (tests pass an InMemorySpanExporter). Pass the sink to
    `CallTracer`, and call `shutdown_tracing` at exit to flush what is queued. `worker`: this process's index under
    `--workers`, named in the resource's service.instance.id."""
    settings = resolve_settings(config, environ)
    if exporter is None:
        exporter = build_exporter(settings)
    if exporter is None:
        return None
    from gateway.observe.span_sinks import OtlpSink, SdkSink, Transport

    sampler = build_sampler(settings)
    resource = with_instance_id(settings.resource_attributes, worker)
    sink: Sink
    if isinstance(exporter, Transport):
        sink = OtlpSink(exporter, sampler, resource)
    else:
        sink = SdkSink(exporter, sampler, resource, settings.export_timeout_s)
    log.info(
        "tracing: exporter=%s protocol=%s endpoint=%s sampler=%s",
        settings.exporter,
        settings.protocol,
        settings.endpoint,
        settings.sampler,
    )
    return sink


def with_instance_id(resource: Mapping[str, str], worker: int | None) -> dict[str, str]:
    """The resource with service.instance.id naming this process: `<host>-<pid>`, or `<host>-w<index>-<pid>` for a
    worker of `--workers`, unless the config or OTEL_RESOURCE_ATTRIBUTES set one (then a worker's gets `-w<index>`,
    so that each worker stays its own instance, as the conventions require)."""
    worker_part = f"-w{worker}" if worker is not None else ""
    attributes = dict(resource)
    given = attributes.get(SERVICE_INSTANCE_ID)
    if given:
        attributes[SERVICE_INSTANCE_ID] = given + worker_part
    else:
        attributes[SERVICE_INSTANCE_ID] = f"{socket.gethostname()}{worker_part}-{os.getpid()}"
    return attributes


def shutdown_tracing(sink: Sink | None) -> None:
    """Exports what is queued (bounded by the export timeout) and stops the worker; blocking, so call it from a
    thread at shutdown (`await asyncio.to_thread(shutdown_tracing, sink)`)."""
    if sink is not None:
        sink.shutdown()


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value


def _ratio(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"OTEL_TRACES_SAMPLER_ARG={raw!r}: expected a number from 0 to 1")
    return value


def _positive_ms(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r}: expected milliseconds above 0")
    return value


def _parse_resource_attributes(raw: str) -> dict[str, str]:
    """`key1=value1,key2=value2`, values percent-decoded, as the spec writes them; malformed pairs are skipped."""
    from urllib.parse import unquote

    attributes: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = unquote(value.strip())
    return attributes
