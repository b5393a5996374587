"""The OpenAI-compatible HTTP server: aiohttp on the gRPC server's own event loop, calling the same pipeline.

Why aiohttp: the gateway already runs it (the providers' client, the /metrics endpoint), it serves HTTP/1.1 with
keep-alive and streamed bodies on the running loop with no second server thread, and it can cancel a handler when
its client goes away (`handler_cancellation`), which is how a disconnect cancels the upstream call.

Handlers are thin, as the gRPC servicers are: JSON -> domain request (openai_schema.py) -> `pipeline.call` -> JSON
(render.py). Errors are mapped once, by a middleware (errors.py). A stream's headers leave with its first chunk, once
the route and the first target are known (a failure before it is still a plain HTTP error), and every chunk after
it goes out as it comes: nothing is buffered.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from gateway import openai_schema
from gateway.batches.service import BatchService
from gateway.config.schema import TlsConfig
from gateway.errors import InvalidRequest, NotFound
from gateway.insights.feedback import FeedbackOperations
from gateway.pipeline import CallInfo, CallKind, Pipeline, deadline_from
from gateway.pipeline.call import Api
from gateway.policy.keyring import KeyRing, grpc_peer
from gateway.request_rules import check_size
from gateway.server.listing import Listed, visible_models
from gateway.server.openai_http import render
from gateway.server.openai_http.batches import BatchHandlers
from gateway.server.openai_http.errors import REQUEST_ID, STREAMING, openai_errors

log = logging.getLogger("gateway.server.http")

CONSOLE_PREFIX = "/console"
CHAT_METHOD = "POST /v1/chat/completions"
EMBEDDINGS_METHOD = "POST /v1/embeddings"


class OpenAIHandlers:
    def __init__(self, pipeline: Pipeline, ring: KeyRing, max_input_chars: int, feedback: FeedbackOperations) -> None:
        self._pipeline = pipeline
        self.ring = ring
        self._max_input_chars = max_input_chars
        self._feedback = feedback

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body, malformed = await _json_body(request)
        stream = body.get("stream") is True
        kind = CallKind.STREAM if stream else CallKind.CHAT
        async with self._pipeline.call(_info(request), kind, CHAT_METHOD, _asked(body)) as scope:
            request[REQUEST_ID] = scope.call.request_id
            if malformed is not None:
                raise malformed
            chat, include_usage = openai_schema.chat_request(body)
            chat.cache = openai_schema.cache_from_headers(request.headers)
            check_size(chat.text_chars, self._max_input_chars)
            if not stream:
                result = await scope.complete(chat)
                return _json(render.completion(scope.call, result), render.headers(scope.call))
            writer = render.ChunkWriter(scope.call, include_usage)
            deltas = scope.stream(chat)
            first = await anext(deltas, None)  # the route is taken and the first chunk is in hand (or the answer ended)
            response = web.StreamResponse(headers={**render.headers(scope.call), **_SSE_HEADERS})
            await response.prepare(request)
            request[STREAMING] = response
            await response.write(writer.first())
            if first is not None:
                await response.write(writer.delta(first))
                async for delta in deltas:
                    await response.write(writer.delta(delta))
        await response.write(writer.last(scope.call))
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        body, malformed = await _json_body(request)
        async with self._pipeline.call(_info(request), CallKind.EMBED, EMBEDDINGS_METHOD, _asked(body)) as scope:
            request[REQUEST_ID] = scope.call.request_id
            if malformed is not None:
                raise malformed
            embed = openai_schema.embed_request(body)
            embed.cache = openai_schema.cache_from_headers(request.headers)
            check_size(embed.text_chars, self._max_input_chars)
            embedded = await scope.embed(embed)
        return _json(render.embeddings(scope.call, embedded, embed.encoding), render.headers(scope.call))

    async def feedback(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/feedback: Insights.Feedback over HTTP, for the calls this door answered (or any other), keyed by
        the x-request-id their answers carried; the same authorization (the key that made the call, its team's
        admin, an admin) and the same errors."""
        body, malformed = await _json_body(request)
        if malformed is not None:
            raise malformed
        request_id, ratings, comment, source = openai_schema.feedback_request(body)
        info = _info(request)
        caller = self.ring.authenticate(info.metadata, info.peer)
        recorded = await self._feedback.give(caller, request_id, ratings, comment, source)
        return _json(render.feedback(recorded), {})

    async def models(self, request: web.Request) -> web.StreamResponse:
        return _json(render.models(self._visible(request)), {})

    async def model(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/models/{model}: one model or route the key may call; 404 as OpenAI answers an unknown one."""
        name = request.match_info["model"]
        found = [m for m in self._visible(request) if m.id == name]
        if not found:
            raise NotFound(f"the model {name!r} does not exist or this key may not call it", reason="UNKNOWN_MODEL")
        return _json(render.model(found[0]), {})

    def _visible(self, request: web.Request) -> list[Listed]:
        info = _info(request)
        return visible_models(self._pipeline, self.ring.authenticate(info.metadata, info.peer))


_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


def _info(request: web.Request) -> CallInfo:
    """The call as the pipeline sees it: the headers are its metadata (authorization, x-data-classification,
    traceparent...), the peer is written as gRPC writes it, so network conditions read both alike, and
    x-gateway-timeout-ms is its deadline."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    address = grpc_peer(peer[0], peer[1]) if peer else ""
    metadata = [(name.lower(), value) for name, value in request.headers.items()]
    return CallInfo(metadata, deadline_from(openai_schema.timeout_from_headers(request.headers)), address, api=Api.HTTP)


async def _json_body(request: web.Request) -> tuple[dict[str, Any], InvalidRequest | None]:
    """The body as a JSON object, or an empty one and the error to raise inside the call (so refusals of malformed
    bodies are audited like any other)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return {}, InvalidRequest(
            "the body is larger than the gateway's limit (server.max_message_bytes)", reason="BODY_TOO_LARGE"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return {}, InvalidRequest(f"the body is not valid JSON: {err}", reason="MALFORMED_JSON")
    if not isinstance(body, dict):
        return {}, InvalidRequest("the body must be a JSON object", reason="MALFORMED_JSON")
    return body, None


def _asked(body: dict[str, Any]) -> str:
    model = body.get("model")
    return model if isinstance(model, str) else ""


def _json(payload: dict[str, Any], headers: dict[str, str]) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json", headers=headers)


@dataclass(slots=True)
class HttpServer:
    """A running front door; `port` is the bound one (useful with port 0)."""

    host: str
    port: int
    _runner: web.AppRunner

    async def close(self) -> None:
        """Stops accepting, lets calls in flight finish (within the runner's shutdown timeout), then closes."""
        await self._runner.cleanup()


async def start_http_server(
    handlers: OpenAIHandlers,
    host: str,
    port: int,
    *,
    max_body_bytes: int,
    grace_s: float,
    tls: TlsConfig | None = None,
    console: web.Application | None = None,
    batches: BatchService | None = None,
) -> HttpServer:
    """Serves the OpenAI-compatible routes (and the operators' `console` at /console, and OpenAI's Files and Batch
    APIs over the Batches service, when given) until `close()`.
    SO_REUSEPORT, as the gRPC server: the workers of `gateway serve --workers N` share the port. Raises OSError when
    the port is taken."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=[openai_errors])
    if console is not None:
        app.add_subapp(CONSOLE_PREFIX, console)
        app.router.add_get(CONSOLE_PREFIX, _to_console)
    app.router.add_post("/v1/chat/completions", handlers.chat_completions)
    app.router.add_post("/v1/embeddings", handlers.embeddings)
    app.router.add_post("/v1/feedback", handlers.feedback)
    app.router.add_get("/v1/models", handlers.models)
    app.router.add_get("/v1/models/{model:.+}", handlers.model)
    if batches is not None:
        BatchHandlers(batches, handlers.ring, _info).add_routes(app)
    # handler_cancellation: a client that goes away cancels its handler, so the pipeline cancels the upstream call.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=grace_s
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=True, ssl_context=_ssl_context(tls) if tls else None)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(host, int(runner.addresses[0][1]), runner)


async def _to_console(request: web.Request) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": f"{CONSOLE_PREFIX}/"})


def _ssl_context(tls: TlsConfig) -> ssl.SSLContext:
    """The gRPC server's certificate and key; with client_ca_file, client certificates are required here too."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(Path(tls.cert_file), Path(tls.key_file))
    if tls.client_ca_file:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(tls.client_ca_file)
    return context
