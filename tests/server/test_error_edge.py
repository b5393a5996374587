"""Errors are mapped to statuses once, at the edge (docs/architecture.md, Errors): every RPC of every service is
implemented by a method wrapped by server/errors.py, so none catches exceptions itself and none falls through to
UNKNOWN with an exception's text, or to UNIMPLEMENTED."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FileDescriptor
from llmgateway.v1 import admin_pb2, batches_pb2, gateway_pb2, insights_pb2

from gateway.server.admin_servicer import AdminServicer
from gateway.server.batches_servicer import BatchesServicer
from gateway.server.insights_servicer import InsightsServicer
from gateway.server.servicer import GatewayServicer

SERVICES = [
    (gateway_pb2.DESCRIPTOR, "Gateway", GatewayServicer),
    (admin_pb2.DESCRIPTOR, "Admin", AdminServicer),
    (insights_pb2.DESCRIPTOR, "Insights", InsightsServicer),
    (batches_pb2.DESCRIPTOR, "Batches", BatchesServicer),
]


@pytest.mark.parametrize(("file", "service", "servicer"), SERVICES, ids=[s[1] for s in SERVICES])
def test_every_rpc_is_implemented_by_a_method_the_error_map_wraps(
    file: FileDescriptor, service: str, servicer: type
) -> None:
    methods = [method.name for method in file.services_by_name[service].methods]
    assert methods
    unwrapped = [name for name in methods if not hasattr(servicer.__dict__.get(name), "__wrapped__")]
    assert not unwrapped, f"{service} RPCs not implemented, or not wrapped by server/errors.py: {unwrapped}"
