"""AWS event-stream framing (`application/vnd.amazon.eventstream`), as Bedrock's ConverseStream sends it.

Each message is a 12-byte prelude (total length, headers length, CRC32 of those eight bytes), typed headers, a
payload and a CRC32 of everything before it. botocore's EventStreamBuffer decodes it (the decoder every AWS SDK for
Python streams with; awscrt has none exposed to Python): bytes go in as aiohttp hands them over, split anywhere, and
each message leaves the buffer as soon as it is complete, so a stream is never held whole.

Messages become named events, as SSE events are (`http.SSEEvent`), so the provider's decoder reads both framings the
same way:
- `:message-type: event` is named by its `:event-type` (messageStart, contentBlockDelta, metadata...), the payload
  (JSON) is its data;
- `:message-type: exception` (a modelled error such as throttlingException) and `error` (an unmodelled one, with
  `:error-code` and `:error-message` headers) are both named `exception`, their data the JSON of an AWS error body:
  `{"__type": <the exception type>, "message": ...}`, which the provider maps as it maps HTTP error bodies.
"""

from __future__ import annotations

import struct
from typing import Any, cast

import orjson
from botocore.eventstream import EventStreamBuffer, EventStreamMessage, ParserError

from gateway.providers.http import SSEEvent

EXCEPTION = "exception"
"""The name of an exception or error message, whatever its type."""


class EventStreamParser:
    """Incremental: feed() what arrived, get the messages it completed. Raises ValueError on a broken frame (a CRC
    that does not match, impossible lengths, undecodable headers); the stream cannot be resynchronised after one."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buffer.add_data(chunk)
        try:
            return [_as_event(message) for message in self._buffer]
        except (ParserError, KeyError, struct.error) as err:
            raise ValueError(f"event-stream {type(err).__name__}: {err}") from None

    def flush(self) -> list[SSEEvent]:
        # A partial message left at the end is a cut stream, which the decoder reports (it saw no final event).
        return []


def _as_event(message: EventStreamMessage) -> SSEEvent:
    # botocore-stubs types headers as int; botocore fills them with EventStreamHeaderParser.parse's dict.
    headers = cast("dict[str, Any]", message.headers)
    kind = headers.get(":message-type", "event")
    if kind == "event":
        return SSEEvent(str(headers.get(":event-type", "")), message.payload.decode())
    if kind == "exception":
        body = orjson.loads(message.payload) if message.payload else {}
        if not isinstance(body, dict):
            body = {}
        body["__type"] = str(headers.get(":exception-type", "UnknownException"))
        return SSEEvent(EXCEPTION, orjson.dumps(body).decode())
    error = {"__type": str(headers.get(":error-code", "UnknownError")), "message": headers.get(":error-message", "")}
    return SSEEvent(EXCEPTION, orjson.dumps(error).decode())
