"""A fast zero-latency upstream speaking OpenAI's Chat Completions wire format, for load tests.

A bare asyncio protocol on uvloop (no web framework) so the upstream is never the bottleneck: it answers every
POST .../chat/completions with a fixed completion, or with server-sent events when the body asks for a stream.
`--chunks` sets a stream's words (6 by default); with `--interval`, a stream is a slow model's, its words one interval
apart (a timer per stream, no task).

    python -m benches.upstream --port 8011
    python -m benches.upstream --port 8012 --chunks 10 --interval 1.0     # a 10 s answer, a word a second
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


_WORDS = ("Hello", " from", " the", " bench", " upstream", ".")
_STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def _stream_events(chunks: int) -> list[bytes]:
    """A stream's pieces: the role event with the first word, one event per further word, then the end (finish
    reason, usage, [DONE] and the last chunk of the HTTP body) as one piece."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "bench-model"}
    words = [_WORDS[i % len(_WORDS)] for i in range(chunks)]
    events = [
        _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        + _sse({**base, "choices": [{"index": 0, "delta": {"content": words[0]}, "finish_reason": None}]})
    ]
    events += [
        _sse({**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}) for w in words[1:]
    ]
    usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
    done = b"data: [DONE]\n\n"
    events.append(
        _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        + _sse({**base, "choices": [], "usage": usage})
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done)
    )
    return events


def _stream_body() -> bytes:
    return b"".join(_stream_events(len(_WORDS)))


_UNAVAILABLE_BODY = orjson.dumps(
    {"error": {"message": "The server is overloaded", "type": "server_error", "param": None, "code": None}}
)
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(_UNAVAILABLE_BODY)
    + _UNAVAILABLE_BODY
)

_STREAM = _STREAM_HEAD + _stream_body()


class _Upstream(asyncio.Protocol):
    def __init__(
        self, fail_rate: float = 0.0, slow: list[bytes] | None = None, interval: float = 0.0, stream: bytes = _STREAM
    ) -> None:
        self._fail_rate = fail_rate
        self._stream = stream
        self._slow = slow
        """A slow stream's pieces, one sent per interval; None: streams are answered at once."""
        self._interval = interval
        self._served = 0
        self._buffer = b""
        self._transport: asyncio.WriteTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not a subclass of asyncio.Transport, only of its interfaces.
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _send_piece(self, index: int) -> None:
        """Sends a slow stream's next piece and schedules the one after, at the stream's start + n intervals."""
        assert self._transport is not None
        assert self._slow is not None
        if self._transport.is_closing():
            return
        self._transport.write(self._slow[index])
        if index + 1 < len(self._slow):
            self._timer = asyncio.get_running_loop().call_at(
                self._started + (index + 1) * self._interval, self._send_piece, index + 1
            )
        else:
            self._timer = None

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
            elif b'"stream":true' not in body:  # orjson writes no spaces, on both the gateway's and the bench's side
                self._transport.write(_UNARY)
            elif self._slow is None:
                self._transport.write(self._stream)
            else:
                self._transport.write(_STREAM_HEAD)
                self._started = asyncio.get_running_loop().time()
                self._send_piece(0)


async def serve(host: str, port: int, fail_rate: float = 0.0, chunks: int = 0, interval: float = 0.0) -> None:
    # Failures are spread evenly over each connection's requests, so a run's failure share is exact, not drawn.
    loop = asyncio.get_running_loop()
    slow = _stream_events(chunks or len(_WORDS)) if interval > 0 else None
    stream = _STREAM_HEAD + b"".join(_stream_events(chunks)) if chunks else _STREAM
    server = await loop.create_server(lambda: _Upstream(fail_rate, slow, interval, stream), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 503, e.g. 0.3")
    parser.add_argument("--chunks", type=int, default=0, help="words per streamed answer (default 6)")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between a stream's words (default 0)")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.fail_rate, args.chunks, args.interval))


if __name__ == "__main__":
    main()
