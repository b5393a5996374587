"""The references every load figure is judged against, run in the same benchmark as the gateway:

- `echo`: a grpc.aio server that answers Chat/ChatStream at once; its throughput is the load generator's ceiling.
- `forwarder`: the floor of the stack, a bare grpc.aio + uvloop server that only forwards Chat to the upstream with
  aiohttp (no auth, no validation, no accounting). The gateway's throughput is reported as a share of it.
  `--stream-upstream` sends ChatStream elsewhere (a slow model) and `--gateway-options` gives the server the
  gateway's own gRPC options, so a burst of long streams meets the same transport settings (benches/stream_burst.py).

    python -m benches.reference_servers echo --port 50100
    python -m benches.reference_servers forwarder --port 50101 --upstream http://127.0.0.1:8011/v1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import orjson
import uvloop
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

_ECHO = pb.ChatResponse(
    id="echo",
    model="echo",
    provider="echo",
    message=pb.Message(role="assistant", content="Hello from the echo server."),
    finish_reason="stop",
    usage=pb.Usage(prompt_tokens=12, completion_tokens=6, total_tokens=18),
)


class Echo(gateway_pb2_grpc.GatewayServicer):
    async def Chat(self, request: pb.ChatRequest, context: Any) -> pb.ChatResponse:  # noqa: N802
        return _ECHO

    async def ChatStream(self, request: pb.ChatRequest, context: Any) -> AsyncIterator[pb.ChatChunk]:  # noqa: N802
        for word in ("Hello", " from", " the", " echo", " server", "."):
            yield pb.ChatChunk(id="echo", delta=word)
        yield pb.ChatChunk(id="echo", finish_reason="stop", usage=_ECHO.usage)


class Forwarder(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, upstream: str, stream_upstream: str = "", max_connections: int = 256) -> None:
        self._url = upstream.rstrip("/") + "/chat/completions"
        self._stream_url = stream_upstream.rstrip("/") + "/chat/completions" if stream_upstream else self._url
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _body(self, request: pb.ChatRequest, stream: bool) -> bytes:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)

    async def Chat(self, request: pb.ChatRequest, context: Any) -> pb.ChatResponse:  # noqa: N802
        async with self._http().post(
            self._url, data=self._body(request, False), headers={"content-type": "application/json"}
        ) as response:
            data = orjson.loads(await response.read())
        choice = data["choices"][0]
        usage = data["usage"]
        return pb.ChatResponse(
            id=data["id"],
            model=data["model"],
            provider="upstream",
            message=pb.Message(role="assistant", content=choice["message"]["content"]),
            finish_reason=choice["finish_reason"],
            usage=pb.Usage(
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                total_tokens=usage["total_tokens"],
            ),
        )

    async def ChatStream(self, request: pb.ChatRequest, context: Any) -> AsyncIterator[pb.ChatChunk]:  # noqa: N802
        async with self._http().post(
            self._stream_url, data=self._body(request, True), headers={"content-type": "application/json"}
        ) as response:
            async for line in response.content:
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                event = orjson.loads(line[6:])
                if event["choices"]:
                    delta = event["choices"][0]["delta"].get("content")
                    if delta:
                        yield pb.ChatChunk(id=event["id"], delta=delta)
                elif event.get("usage"):
                    usage = event["usage"]
                    yield pb.ChatChunk(
                        id=event["id"],
                        finish_reason="stop",
                        usage=pb.Usage(
                            prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"]
                        ),
                    )


async def serve(
    servicer: gateway_pb2_grpc.GatewayServicer, port: int, options: list[tuple[str, int]] | None = None
) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *(options or [])])
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["echo", "forwarder"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--stream-upstream", default="", help="where ChatStream goes; default: --upstream")
    parser.add_argument("--max-connections", type=int, default=256, help="the forwarder's upstream connection pool")
    parser.add_argument("--gateway-options", action="store_true", help="the gateway's gRPC server options")
    parser.add_argument("--option", action="append", default=[], help="a gRPC option, NAME=INT (over the gateway's)")
    args = parser.parse_args()
    servicer: gateway_pb2_grpc.GatewayServicer = (
        Echo() if args.kind == "echo" else Forwarder(args.upstream, args.stream_upstream, args.max_connections)
    )
    options: dict[str, int] = {}
    if args.gateway_options:
        from gateway.config.schema import ServerConfig  # only this mode pays for the import
        from gateway.server.app import server_options

        options.update(server_options(ServerConfig()))
    for option in args.option:
        # In place, not appended: of two equal names in a channel's options, gRPC takes the first.
        name, _, value = option.partition("=")
        options[name] = int(value)
    uvloop.run(serve(servicer, args.port, list(options.items())))


if __name__ == "__main__":
    main()
