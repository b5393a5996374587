"""Domain errors. Each carries a transport-neutral kind and a machine-readable reason for google.rpc.ErrorInfo.

The kinds are the canonical error codes of google.rpc.Code, which name what went wrong without naming a transport;
the edge maps them once: to gRPC statuses in server/errors.py, to HTTP statuses wherever HTTP is served. Messages
are written for the person reading them and never contain a secret or a prompt.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """What kind of failure a caller sees; the value is the canonical code's name, as audit records store it."""

    CANCELLED = "CANCELLED"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    UNAUTHENTICATED = "UNAUTHENTICATED"


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    kind: ErrorKind = ErrorKind.INTERNAL
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
    kind = ErrorKind.INVALID_ARGUMENT
    reason = "INVALID_REQUEST"


class Unauthenticated(GatewayError):
    kind = ErrorKind.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    kind = ErrorKind.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(GatewayError):
    kind = ErrorKind.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(GatewayError):
    kind = ErrorKind.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class RateLimited(GatewayError):
    kind = ErrorKind.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"


class Overloaded(GatewayError):
    """The gateway process already serves as many calls as it is configured to; another process, or this one a
    little later, can take the call."""

    kind = ErrorKind.RESOURCE_EXHAUSTED
    reason = "GATEWAY_OVERLOADED"


class FailedPrecondition(GatewayError):
    kind = ErrorKind.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unavailable(GatewayError):
    """A part of the gateway the call needs (not a provider) cannot answer now; retrying later may work."""

    kind = ErrorKind.UNAVAILABLE
    reason = "UNAVAILABLE"


class DeadlineExceeded(GatewayError):
    kind = ErrorKind.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class ProviderError(GatewayError):
    """A failure of the upstream provider. `retryable` says whether another attempt (here or elsewhere) may work."""

    kind = ErrorKind.UNAVAILABLE
    reason = "UPSTREAM_UNAVAILABLE"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        kind: ErrorKind | None = None,
        reason: str | None = None,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        meta = {"provider": provider}
        if http_status is not None:
            meta["http_status"] = str(http_status)
        super().__init__(message, reason=reason, retry_after=retry_after, metadata=meta)
        if kind is not None:
            self.kind = kind
        self.provider = provider
        self.http_status = http_status
        self.retryable = retryable
