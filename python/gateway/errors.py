"""Domain errors. Each carries the gRPC status it maps to and a machine-readable reason for google.rpc.ErrorInfo.

The server maps them to a status in one place (server/errors.py); messages are written for the person reading them
and never contain a secret or a prompt.
"""

from __future__ import annotations

import grpc


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.retry_after = retry_after
        self.metadata = metadata or {}


class InvalidRequest(GatewayError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_REQUEST"


class Unauthenticated(GatewayError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(GatewayError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class RateLimited(GatewayError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"


class FailedPrecondition(GatewayError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unavailable(GatewayError):
    """A part of the gateway the call needs (not a provider) cannot answer now; retrying later may work."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(GatewayError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class ProviderError(GatewayError):
    """A failure of the upstream provider. `retryable` says whether another attempt (here or elsewhere) may work."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UPSTREAM_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        meta = {"provider": provider}
        if http_status is not None:
            meta["http_status"] = str(http_status)
        super().__init__(message, reason=reason, retry_after=retry_after, metadata=meta)
        if code is not None:
            self.code = code
        self.provider = provider
        self.http_status = http_status
        self.retryable = retryable
