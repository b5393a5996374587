"""The OpenAI-compatible HTTP front door: POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models on an
aiohttp server in the gRPC server's process and event loop, through the same pipeline."""

from __future__ import annotations

import os

from gateway.config.schema import GatewayConfig

HTTP_ADDRESS_ENV = "GATEWAY_HTTP_ADDR"
"""Where the front door listens when --http-address is not given."""


def resolve_http_address(config: GatewayConfig, flag: str | None) -> str:
    """--http-address, else env GATEWAY_HTTP_ADDR, else server.http_address; "" (or nothing set) is off. Light to
    import: the --workers supervisor resolves it before it may import the server."""
    if flag is not None:
        return flag
    return os.environ.get(HTTP_ADDRESS_ENV, config.server.http_address or "")
