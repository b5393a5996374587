"""A test-side encoder of AWS event-stream messages, for the fake Bedrock's ConverseStream answers.

The layout (docs.aws.amazon.com/transcribe/latest/dg/event-stream.html, awslabs/aws-c-event-stream): a prelude of
total length (4 bytes), headers length (4) and the CRC32 of those eight bytes; the headers, each a 1-byte name
length, the name, a type byte (7: string) and a 2-byte value length with the value; the payload; and the CRC32 of
everything before it. Only string headers are written, as Bedrock writes them. tests/providers/test_eventstream.py
checks the output against a vector of the AWS event-stream test suite.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

STRING = 7


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(
        struct.pack(">B", len(name.encode()))
        + name.encode()
        + struct.pack(">BH", STRING, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """An event message as Bedrock sends it, padding field `p` included (it varies the length of every frame)."""
    payload = orjson.dumps({**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[: 1 + len(event_type) % 30]})
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, payload)


def exception(exception_type: str, message: str) -> bytes:
    """A modelled exception mid-stream: `exception_type` is the member name, e.g. throttlingException."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message}))


def corrupt(message: bytes) -> bytes:
    """The message with its last payload byte changed: the message CRC no longer matches."""
    index = len(message) - 5
    return message[:index] + bytes([message[index] ^ 0x01]) + message[index + 1 :]
