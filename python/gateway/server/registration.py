"""Services registered with grpc.aio through their generic handlers, with long streams on a queue of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import grpc

SEPARATE_QUEUES = frozenset({("llmgateway.v1.Gateway", "ChatStream")})
"""(service, method) whose calls grpc.aio takes from a queue of their own. Long streams: opening one costs the event
loop several times a quick call, so a burst of them (5,000 in a second) keeps the loop busy for seconds, and on the
shared queue every quick call, health check and admin call that arrives meanwhile waits behind all of them
(benches/stream_lag.py, 2,000 streams: quick Chat p50 6.8 s while they opened, with the loop's own lag at 2 ms).
On a queue of their own they wait only for the loop: p50 8 ms in the same conditions. A registered method makes
grpc.aio wait on two pending tasks for every call it takes instead of one: no difference in server CPU per call was
measurable (benches/accept_queues.py)."""


class _GenericHandlersOnly:
    """What the generated ``add_*Servicer_to_server`` functions call on a server, passing on the generic handler of
    each service and, of its "registered methods", only those in `SEPARATE_QUEUES`.

    Those functions register every service both ways. For registered methods, grpc.aio keeps one pending task per
    method and, for every call it takes, waits on all of them (one ``asyncio.wait`` over the gateway's 28 methods):
    in the server that cost ~170,000 instructions a Chat call, 9% of the whole call (callgrind over 800 calls, after
    warm-up), where the generic path keeps one task for every method. Registration buys nothing in the core for
    reading requests: grpc.aio registers methods without payload pre-reading, and the generic handler finds a method
    by one dictionary lookup. What it does buy is a queue of its own: grpc.aio takes calls from the core one at a
    time per queue, one per turn of the event loop, in arrival order, so on the generic queue alone every call that
    arrives during a burst of streams opening waits until the loop has taken every stream ahead of it."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Registers only the methods in `SEPARATE_QUEUES`; the generic handler serves the others."""
        separate = {name: handler for name, handler in handlers.items() if (service, name) in SEPARATE_QUEUES}
        if separate:
            self._server.add_registered_method_handlers(service, separate)


def generic_registrar(server: grpc.aio.Server) -> grpc.aio.Server:
    """Stands in for `server` in the generated registration functions and in reflection's and health's."""
    # The generated functions are typed for a whole server; they call only the two methods above.
    return cast(grpc.aio.Server, _GenericHandlersOnly(server))
