"""The event-stream framing: the test-side encoder against a published vector, then the gateway's parser (botocore's
decoder behind it) fed the encoder's frames split anywhere, corrupted, and carrying exceptions."""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.providers.eventstream import EXCEPTION, EventStreamParser
from gateway.providers.http import SSEEvent
from tests.fakes import eventstream

# The "payload_one_str_header" vector of the AWS event-stream test suite (awslabs/aws-c-event-stream,
# test/resources/encoded/positive), as botocore's tests/unit/test_eventstream.py quotes it.
VECTOR = (
    b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10"
    b"application/json{'foo':'bar'}\x8d\x9c\x08\xb1"
)


def test_the_encoder_writes_the_published_vector() -> None:
    assert eventstream.encode_message({"content-type": "application/json"}, b"{'foo':'bar'}") == VECTOR


def _delta(text: str) -> bytes:
    return eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}})


def test_events_are_named_by_their_event_type() -> None:
    parser = EventStreamParser()
    (event,) = parser.feed(_delta("Hi"))
    assert event.event == "contentBlockDelta"
    assert orjson.loads(event.data)["delta"] == {"text": "Hi"}
    assert parser.flush() == []


@given(
    texts=st.lists(st.text(min_size=0, max_size=40), min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_frames_split_anywhere_decode_to_the_same_events(texts: list[str], cuts: list[int]) -> None:
    stream = b"".join(_delta(text) for text in texts)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    parser = EventStreamParser()
    events: list[SSEEvent] = []
    for start, end in itertools.pairwise(bounds):
        events.extend(parser.feed(stream[start:end]))
    assert [orjson.loads(e.data)["delta"]["text"] for e in events] == texts


def test_a_message_is_returned_as_soon_as_its_last_byte_arrives() -> None:
    frame = _delta("Hello")
    parser = EventStreamParser()
    assert parser.feed(frame[:-1]) == []
    assert len(parser.feed(frame[-1:])) == 1


@pytest.mark.parametrize(
    "broken",
    [
        eventstream.corrupt(_delta("x")),  # the message CRC
        _delta("x")[:8] + b"\x00\x00\x00\x00" + _delta("x")[12:],  # the prelude CRC
    ],
    ids=["message-crc", "prelude-crc"],
)
def test_a_bad_crc_is_a_value_error(broken: bytes) -> None:
    parser = EventStreamParser()
    with pytest.raises(ValueError, match="ChecksumMismatch"):
        parser.feed(_delta("fine") + broken)


def test_an_exception_message_becomes_an_aws_error_body() -> None:
    (event,) = EventStreamParser().feed(eventstream.exception("throttlingException", "Too many requests"))
    assert event.event == EXCEPTION
    assert orjson.loads(event.data) == {"__type": "throttlingException", "message": "Too many requests"}


def test_an_error_message_becomes_an_aws_error_body() -> None:
    headers = {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}
    (event,) = EventStreamParser().feed(eventstream.encode_message(headers, b""))
    assert event.event == EXCEPTION
    assert orjson.loads(event.data) == {"__type": "InternalFailure", "message": "boom"}
