"""Services registered with grpc.aio through their generic handlers only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import grpc


class _GenericHandlersOnly:
    """What the generated ``add_*Servicer_to_server`` functions call on a server, passing on the generic handler of
    each service and leaving out its "registered methods".

    Those functions register every service both ways. For registered methods, grpc.aio keeps one pending task per
    method and, for every call it takes, waits on all of them (one ``asyncio.wait`` over the gateway's 28 methods):
    in the server that cost ~170,000 instructions a Chat call, 9% of the whole call (callgrind over 800 calls, after
    warm-up), where the generic path keeps one task for every method. Registration buys nothing in the core here:
    grpc.aio registers methods without payload pre-reading, so a request is read the same way on both paths, and the
    generic handler finds a method by one dictionary lookup."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Left out on purpose: the generic handler registered with them serves the same methods."""


def generic_registrar(server: grpc.aio.Server) -> grpc.aio.Server:
    """Stands in for `server` in the generated registration functions and in reflection's and health's."""
    # The generated functions are typed for a whole server; they call only the two methods above.
    return cast(grpc.aio.Server, _GenericHandlersOnly(server))
