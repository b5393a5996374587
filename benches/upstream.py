"""A fast zero-latency upstream speaking OpenAI's Chat Completions wire format, for load tests.

A bare asyncio protocol on uvloop (no web framework) so the upstream is never the bottleneck: it answers every
POST .../chat/completions with a fixed completion, or with server-sent events when the body asks for a stream.

    python -m benches.upstream --port 8011
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvloop

_ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }
)
_UNARY = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(_ANSWER) + _ANSWER


def _sse(payload: dict[str, object]) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _stream_body() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "bench-model"}
    events = [
        _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    ]
    events += [
        _sse({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
        for word in ("Hello", " from", " the", " bench", " upstream", ".")
    ]
    events.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    events.append(
        _sse({**base, "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}})
    )
    done = b"data: [DONE]\n\n"
    events.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
    return b"".join(events)


_UNAVAILABLE_BODY = orjson.dumps(
    {"error": {"message": "The server is overloaded", "type": "server_error", "param": None, "code": None}}
)
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(_UNAVAILABLE_BODY)
    + _UNAVAILABLE_BODY
)

_STREAM = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n" + _stream_body()


class _Upstream(asyncio.Protocol):
    def __init__(self, fail_rate: float = 0.0) -> None:
        self._fail_rate = fail_rate
        self._served = 0
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not a subclass of asyncio.Transport, only of its interfaces.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self._buffer[:head_end].lower()
            length_at = head.find(b"content-length:")
            length = (
                int(head[length_at + 15 : head.find(b"\r\n", length_at) if head.find(b"\r\n", length_at) > 0 else None])
                if length_at >= 0
                else 0
            )
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body = self._buffer[head_end + 4 : end]
            self._buffer = self._buffer[end:]
            assert self._transport is not None
            self._served += 1
            if int(self._served * self._fail_rate) > int((self._served - 1) * self._fail_rate):
                self._transport.write(_UNAVAILABLE)
            else:
                # Bodies come from orjson, which writes no spaces, on both the gateway's and the bench's side.
                self._transport.write(_STREAM if b'"stream":true' in body else _UNARY)


async def serve(host: str, port: int, fail_rate: float = 0.0) -> None:
    # Failures are spread evenly over each connection's requests, so a run's failure share is exact, not drawn.
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Upstream(fail_rate), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 503, e.g. 0.3")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.fail_rate))


if __name__ == "__main__":
    main()
