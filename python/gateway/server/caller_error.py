"""A failure as a caller of either front door may see it: the domain error, its message scrubbed of PII, logged
once at the level its kind deserves. An unexpected exception is a bug: logged with its traceback and answered as
INTERNAL without internals (TensorZero's rule: raw details only in the server's log)."""

from __future__ import annotations

import logging

from gateway.errors import ErrorKind, GatewayError
from gateway.policy.pii import scrub

_SERVER_SIDE = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.INTERNAL, ErrorKind.FAILED_PRECONDITION})


def caller_error(err: Exception, log: logging.Logger) -> GatewayError:
    if not isinstance(err, GatewayError):
        log.error("unexpected error in a call", exc_info=err)
        err = GatewayError("internal error in the gateway; the operators' log has the details")
    err.message = scrub(err.message)
    level = logging.WARNING if err.kind in _SERVER_SIDE else logging.INFO
    log.log(level, "call failed: %s %s: %s", err.kind.value, err.reason, err.message)
    return err
