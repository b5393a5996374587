"""The one map from domain errors to gRPC statuses with google.rpc details (ErrorInfo, RetryInfo), and the wrappers
that apply it to every servicer method, so no method catches exceptions itself."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.errors import ErrorKind, GatewayError
from gateway.server.caller_error import caller_error

ERROR_DOMAIN = "llmgateway.v1"
log = logging.getLogger("gateway.server")

Context = grpc.aio.ServicerContext[Any, Any]
S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

GRPC_STATUS: dict[ErrorKind, grpc.StatusCode] = {kind: grpc.StatusCode[kind.value] for kind in ErrorKind}
"""Each kind is the gRPC status of the same name: the kinds are google.rpc.Code's canonical codes."""


def status_for(err: GatewayError) -> grpc.Status:
    details = [_pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN, metadata=err.metadata))]
    if err.retry_after is not None:
        seconds = max(err.retry_after, 0.0)
        whole = math.floor(seconds)
        delay = duration_pb2.Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(code=GRPC_STATUS[err.kind].value[0], message=err.message, details=details)
    return rpc_status.to_status(status)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort(context: Context, err: Exception) -> NoReturn:
    """Ends the call with the error's status (server/caller_error.py says what the caller sees of it)."""
    await context.abort_with_status(status_for(caller_error(err, log)))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover


def unary(
    method: Callable[[S, Req, Context], Awaitable[Resp]],
) -> Callable[[S, Req, Context], Awaitable[Resp]]:
    """A unary servicer method whose exceptions end the call with their mapped status (a cancel passes through)."""

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context) -> Resp:
        try:
            return await method(self, request, context)
        except Exception as err:
            await abort(context, err)

    return handler


def streaming(
    method: Callable[[S, Req, Context], AsyncIterator[Resp]],
) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
    """A server-streaming servicer method (an async generator), mapped as `unary` maps its errors; chunks already
    sent stay sent, the status ends the stream."""

    @functools.wraps(method)
    async def handler(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as err:
            await abort(context, err)

    return handler
