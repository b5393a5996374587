"""The one map from domain errors to HTTP statuses and OpenAI's error body, applied by one middleware to every
route, so no handler catches exceptions itself (the HTTP twin of server/errors.py). The same middleware gives every
response its `x-request-id`: the call's id when the pipeline opened one, else a fresh one (an unknown path, a
listing refused for its key), so every answer can be quoted back.

Statuses follow google.rpc.Code's own HTTP mapping, with the reasons OpenAI answers differently: an unknown model is
404 (OpenAI's `model_not_found`), an input over the size limit 413. The body is OpenAI's
`{"error": {"message", "type", "param", "code"}}`; `code` is the gateway's reason in lower case (the gRPC
ErrorInfo reason), `param` the request field at fault when there is one.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ErrorKind, GatewayError
from gateway.pipeline.call import request_id
from gateway.server.caller_error import caller_error

log = logging.getLogger("gateway.server.http")

HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID_ARGUMENT: 400,
    ErrorKind.FAILED_PRECONDITION: 400,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.PERMISSION_DENIED: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.ALREADY_EXISTS: 409,
    ErrorKind.RESOURCE_EXHAUSTED: 429,
    ErrorKind.CANCELLED: 499,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.DEADLINE_EXCEEDED: 504,
}
STATUS_BY_REASON: dict[str, int] = {"UNKNOWN_MODEL": 404, "INPUT_TOO_LARGE": 413, "BODY_TOO_LARGE": 413}
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

REQUEST_ID = web.RequestKey("request_id", str)
"""Where a handler leaves the call's id once it has one, for the error response's x-request-id."""
STREAMING = web.RequestKey("streaming", web.StreamResponse)
"""Where a handler leaves a stream response once its headers are sent: an error then ends the stream instead."""


def status_of(err: GatewayError) -> int:
    return STATUS_BY_REASON.get(err.reason) or HTTP_STATUS[err.kind]


def error_body(err: GatewayError) -> dict[str, Any]:
    status = status_of(err)
    return {
        "error": {
            "message": err.message,
            "type": _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "param": err.metadata.get("param"),
            "code": err.reason.lower(),
        }
    }


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Exceptions become OpenAI error responses: a JSON error with the mapped status (and Retry-After when a retry
    may succeed) before any byte was sent; once a stream has started, an `error` event as OpenAI sends them, then the
    end of the stream. A cancel (the client went away) passes through."""
    try:
        response = await handler(request)
    except web.HTTPException as refused:  # aiohttp's own: no such path, method not allowed
        response = _refusal(request, refused)
    except Exception as raw:
        err = caller_error(raw, log)
        started = request.get(STREAMING)
        if started is None:
            response = _error_response(err, request)
        else:
            await started.write(b"data: " + orjson.dumps(error_body(err)) + b"\n\n")
            await started.write_eof()
            response = started
    if not response.prepared:
        response.headers.setdefault("x-request-id", request.get(REQUEST_ID) or request_id(time.time()))
    return response


def _error_response(err: GatewayError, request: web.Request) -> web.Response:
    headers = {"x-request-id": request[REQUEST_ID]} if REQUEST_ID in request else {}
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
    body = orjson.dumps(error_body(err))
    return web.Response(status=status_of(err), body=body, content_type="application/json", headers=headers)


def _refusal(request: web.Request, refused: web.HTTPException) -> web.Response:
    """aiohttp's own refusals (no such path, method not allowed) in OpenAI's error body."""
    if refused.status == 404:
        message = (
            f"no route {request.path}: this gateway serves POST /v1/chat/completions, POST /v1/embeddings, "
            "POST /v1/feedback and GET /v1/models"
        )
    else:
        message = f"{request.method} {request.path}: {refused.reason}"
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return web.Response(status=refused.status, body=orjson.dumps(body), content_type="application/json")
