"""Tracing configured from OTEL_* variables and `observe.tracing`; a collector that is down costs nothing."""

from __future__ import annotations

import os
import socket
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio, TraceIdRatioBased
from pydantic import ValidationError

from gateway.config.observe import ObserveConfig, TracingConfig
from gateway.observe.spans import CallTracer
from gateway.observe.tracing import (
    TracingSettings,
    build_exporter,
    build_sampler,
    resolve_settings,
    setup_tracing,
    shutdown_tracing,
    with_instance_id,
)


def test_defaults_are_off_with_the_spec_defaults() -> None:
    assert resolve_settings(None, {}) == TracingSettings(
        exporter="none",
        endpoint="http://localhost:4317",
        protocol="grpc",
        service_name="llm-gateway",
        resource_attributes={"service.name": "llm-gateway"},
        sampler="parentbased_always_on",
        sampler_arg=1.0,
        export_timeout_s=10.0,
    )
    assert setup_tracing(None, environ={}) is None


def test_environment_variables_configure_everything() -> None:
    settings = resolve_settings(
        None,
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "gw-eu",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team.name=ml%20ops,broken",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        },
    )
    assert settings == TracingSettings(
        exporter="otlp",
        endpoint="http://collector:4318",
        protocol="http/protobuf",
        service_name="gw-eu",
        resource_attributes={"deployment.environment": "prod", "team.name": "ml ops", "service.name": "gw-eu"},
        sampler="parentbased_traceidratio",
        sampler_arg=0.25,
        export_timeout_s=2.5,
    )
    sampler = build_sampler(settings)
    assert isinstance(sampler, ParentBasedTraceIdRatio)
    assert "0.25" in sampler.get_description()


def test_the_config_wins_over_the_environment() -> None:
    config = ObserveConfig.model_validate(
        {
            "tracing": {
                "exporter": "console",
                "service_name": "from-config",
                "resource_attributes": {"deployment.environment": "staging"},
                "sampler": "traceidratio",
                "sampler_arg": 0.5,
            }
        }
    )
    settings = resolve_settings(
        config.tracing,
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,region=eu",
            "OTEL_TRACES_SAMPLER": "always_off",
        },
    )
    assert settings.exporter == "console"
    assert settings.service_name == "from-config"
    assert settings.resource_attributes == {
        "deployment.environment": "staging",
        "region": "eu",
        "service.name": "from-config",
    }
    assert isinstance(build_sampler(settings), TraceIdRatioBased)
    assert isinstance(build_exporter(settings), ConsoleSpanExporter)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_TRACES_EXPORTER", "jaeger"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "0"),
    ],
)
def test_a_bad_environment_value_is_an_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        resolve_settings(None, {name: value})


def test_the_config_rejects_unknown_values_and_keys() -> None:
    with pytest.raises(ValidationError):
        TracingConfig.model_validate({"exporter": "zipkin"})
    with pytest.raises(ValidationError):
        TracingConfig.model_validate({"sampler_arg": 2})
    with pytest.raises(ValidationError):
        ObserveConfig.model_validate({"tracing": {"exporter": "none", "endpiont": "x"}})


def test_otlp_exporters_for_both_protocols() -> None:
    grpc_exporter = build_exporter(resolve_settings(TracingConfig(exporter="otlp", protocol="grpc"), {}))
    assert isinstance(grpc_exporter, GrpcExporter)
    grpc_exporter.shutdown()
    http_exporter = build_exporter(
        resolve_settings(
            TracingConfig(exporter="otlp", protocol="http/protobuf", endpoint="http://collector:4318/"), {}
        )
    )
    assert isinstance(http_exporter, HttpExporter)
    assert http_exporter._endpoint == "http://collector:4318/v1/traces"
    http_exporter.shutdown()
    default_http = build_exporter(
        resolve_settings(None, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    )
    assert isinstance(default_http, HttpExporter)
    assert default_http._endpoint == "http://localhost:4318/v1/traces"
    default_http.shutdown()


def test_setup_exports_through_a_batch_processor() -> None:
    exporter = InMemorySpanExporter()
    provider = setup_tracing(TracingConfig(service_name="unit"), environ={}, exporter=exporter)
    assert provider is not None
    call = CallTracer(provider).start_call("Chat", None)
    call.end()
    assert exporter.get_finished_spans() == ()  # queued for the worker, not exported on the caller's thread
    assert provider.force_flush(5_000)
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "unit"
    assert span.resource.attributes["service.instance.id"] == f"{socket.gethostname()}-{os.getpid()}"
    shutdown_tracing(provider)


def test_each_worker_is_its_own_service_instance() -> None:
    host, pid = socket.gethostname(), os.getpid()
    assert with_instance_id({"service.name": "gw"}, None) == {
        "service.name": "gw",
        "service.instance.id": f"{host}-{pid}",
    }
    assert with_instance_id({}, 3)["service.instance.id"] == f"{host}-w3-{pid}"
    # One the operator set is kept; under --workers each worker's gets its index, so instances stay distinct.
    assert with_instance_id({"service.instance.id": "eu-1"}, None)["service.instance.id"] == "eu-1"
    assert with_instance_id({"service.instance.id": "eu-1"}, 0)["service.instance.id"] == "eu-1-w0"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_collector_that_is_down_neither_raises_nor_blocks_calls(protocol: str) -> None:
    port = _closed_port()
    provider = setup_tracing(
        TracingConfig(
            exporter="otlp",
            protocol=protocol,
            endpoint=f"http://127.0.0.1:{port}",
            export_timeout_s=1.0,  # type: ignore[arg-type]
        ),
        environ={},
    )
    assert provider is not None
    tracer = CallTracer(provider)
    started = time.perf_counter()
    for _ in range(2_000):
        call = tracer.start_call("Chat", None)
        with call.stage("route"):
            pass
        call.end()
    elapsed = time.perf_counter() - started
    # 4,000 spans; on the request path each is a queue append, tens of microseconds at most even on a busy machine.
    assert elapsed < 2.0, elapsed
    started = time.perf_counter()
    shutdown_tracing(provider)
    # Shutdown tries one last export, bounded by the export timeout, then gives up: the spans are dropped.
    assert time.perf_counter() - started < 6.0
