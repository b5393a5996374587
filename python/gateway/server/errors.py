"""The one map from domain errors to gRPC statuses with google.rpc details (ErrorInfo, RetryInfo)."""

from __future__ import annotations

import logging
import math
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.errors import GatewayError
from gateway.policy.pii import scrub

ERROR_DOMAIN = "llmgateway.v1"
log = logging.getLogger("gateway.server")


def status_for(err: GatewayError) -> grpc.Status:
    details = [_pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN, metadata=err.metadata))]
    if err.retry_after is not None:
        seconds = max(err.retry_after, 0.0)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    return rpc_status.to_status(status)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: Exception) -> NoReturn:
    """Ends the call with the error's status. An unexpected exception is a bug: it is logged with its traceback and
    the caller gets INTERNAL without internals (TensorZero's rule: raw details only in the server's log)."""
    if not isinstance(err, GatewayError):
        log.error("unexpected error in a call", exc_info=err)
        err = GatewayError("internal error in the gateway; the operators' log has the details")
    err.message = scrub(err.message)
    level = logging.WARNING if err.code in _SERVER_SIDE else logging.INFO
    log.log(level, "call failed: %s %s: %s", err.code.name, err.reason, err.message)
    await context.abort_with_status(status_for(err))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover


_SERVER_SIDE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.FAILED_PRECONDITION})
