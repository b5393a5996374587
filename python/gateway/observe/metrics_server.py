"""The /metrics endpoint: Prometheus text format over HTTP, served by aiohttp on the gateway's own event loop, with
the text rendered in a worker thread.

Measured (docs/benchmarks/observe.md): rendering a busy registry (20 models x 3 routes x 4 codes) takes ~140 ms of
pure Python. Inline on the loop that would stall every call for the length of a scrape; in a thread the loop keeps
running, the interpreter switching between the two every 5 ms. The server itself stays on the loop (no second
server thread and shutdown path outside asyncio; `close()` is awaited with the rest of the shutdown).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

DEFAULT_ADDRESS: Final = "127.0.0.1:9464"
ENV_ADDRESS: Final = "GATEWAY_METRICS_ADDR"


def metrics_address(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The endpoint's address: `--metrics-address`, else GATEWAY_METRICS_ADDR, else 127.0.0.1:9464."""
    env = os.environ if environ is None else environ
    return flag or env.get(ENV_ADDRESS) or DEFAULT_ADDRESS


def parse_address(address: str, what: str = "metrics address") -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces) into (host, port); ValueError says what is wrong."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{what} {address!r}: expected host:port, e.g. {DEFAULT_ADDRESS}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{what} {address!r}: port {port} is above 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", port


@dataclass(slots=True)
class MetricsServer:
    """A running /metrics endpoint; `port` is the bound one (useful with port 0)."""

    host: str
    port: int
    _runner: web.AppRunner

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_metrics_server(registry: CollectorRegistry, address: str = DEFAULT_ADDRESS) -> MetricsServer:
    """Serves `registry` at http://address/metrics until `close()`. Raises ValueError for a malformed address and
    OSError when the port is taken."""
    host, port = parse_address(address)

    async def metrics(_: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    return MetricsServer(host, int(bound[1]), runner)
