"""The shared HTTP machinery without sockets: the SSE parser, Retry-After parsing, secret redaction, status mapping."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.schema import ProviderConfig, ProviderType
from gateway.errors import ErrorKind
from gateway.providers.http import (
    SSEEvent,
    SSEParser,
    error_for_status,
    parse_duration,
    parse_retry_after,
    redact_secrets,
)

STREAM = (
    b": keep-alive comment\n"
    b"event: message_start\n"
    b'data: {"a": 1}\n'
    b"\n"
    b"data: first line\n"
    b"data:second line\n"
    b"data: \n"
    b"\n"
    b"id: 7\n"
    b"retry: 100\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\n"
    b"\n"
    b"event: error\n"
    b"\n"  # an event with no data is not dispatched, and its name does not leak into the next one
    b"data: [DONE]\n"
    b"\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"a": 1}'),
    SSEEvent("message", "first line\nsecond line\n"),
    SSEEvent("message", "café €"),
    SSEEvent("message", "[DONE]"),
]


def parse_in_pieces(raw: bytes, cuts: list[int]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    start = 0
    for cut in sorted(set(cuts)):
        events.extend(parser.feed(raw[start:cut]))
        start = cut
    events.extend(parser.feed(raw[start:]))
    events.extend(parser.flush())
    return events


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_sse_whole(line_end: bytes) -> None:
    assert parse_in_pieces(STREAM.replace(b"\n", line_end), []) == EXPECTED


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_sse_byte_by_byte(line_end: bytes) -> None:
    raw = STREAM.replace(b"\n", line_end)
    assert parse_in_pieces(raw, list(range(len(raw)))) == EXPECTED


@given(
    cuts=st.lists(st.integers(min_value=0, max_value=len(STREAM.replace(b"\n", b"\r\n"))), max_size=30),
    line_end=st.sampled_from([b"\n", b"\r\n", b"\r"]),
)
def test_sse_chunk_boundaries_anywhere(cuts: list[int], line_end: bytes) -> None:
    """Wherever the network splits the bytes (inside CRLF, inside a UTF-8 character), the events are the same."""
    assert parse_in_pieces(STREAM.replace(b"\n", line_end), cuts) == EXPECTED


def test_sse_flush_dispatches_an_unterminated_last_event() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"x": 1}') == []
    assert parser.flush() == [SSEEvent("message", '{"x": 1}')]


def test_sse_cr_at_chunk_end_then_lf() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == [SSEEvent("message", "a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [SSEEvent("message", "b")]


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers) == seconds


def test_retry_after_http_date() -> None:
    value = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert parse_retry_after({"retry-after": value}) == pytest.approx(60, abs=2)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("2.5", 2.5), ("", None), ("5 parsecs", None)],
)
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: sk-proj-abcdEFGH1234ijkl5678. You can find your API key at ...",
        "Incorrect API key provided: sk-te****7890.",
        "bad key AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW",
        "header was Bearer abcdefghijklmnop1234",
        "token 0123456789abcdef0123456789abcdef01234567 rejected",
    ],
)
def test_redaction_removes_key_lookalikes(text: str) -> None:
    redacted = redact_secrets(text)
    assert "[redacted]" in redacted
    for secret in ("abcdEFGH1234", "7890", "AIzaSy", "abcdefghijklmnop1234", "0123456789abcdef0123"):
        assert secret not in redacted


def test_redaction_removes_our_own_key_and_keeps_plain_words() -> None:
    key = "plainkey"
    text = "The model `gpt-4o-mini` does not exist; request id req_011CSHoEeqs5C35K2UUqR7Fy; plainkey"
    redacted = redact_secrets(text, key)
    assert "plainkey" not in redacted
    assert "The model `gpt-4o-mini` does not exist; request id req_011CSHoEeqs5C35K2UUqR7Fy" in redacted


def test_redaction_bounds_length() -> None:
    assert len(redact_secrets("x " * 1000)) <= 400


@pytest.mark.parametrize(
    ("status", "code", "reason", "retryable"),
    [
        (400, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),
        (413, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),
        (422, ErrorKind.INVALID_ARGUMENT, "UPSTREAM_REJECTED_REQUEST", False),
        (401, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
        (403, ErrorKind.FAILED_PRECONDITION, "PROVIDER_AUTH_FAILED", False),
        (404, ErrorKind.FAILED_PRECONDITION, "UPSTREAM_MODEL_NOT_FOUND", False),
        (408, ErrorKind.UNAVAILABLE, "UPSTREAM_TIMEOUT", True),
        (409, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        (429, ErrorKind.RESOURCE_EXHAUSTED, "UPSTREAM_RATE_LIMITED", True),
        (500, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        (503, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        (529, ErrorKind.UNAVAILABLE, "UPSTREAM_UNAVAILABLE", True),
        (402, ErrorKind.FAILED_PRECONDITION, "UPSTREAM_REJECTED_REQUEST", False),
    ],
)
def test_status_map(status: int, code: ErrorKind, reason: str, retryable: bool) -> None:
    config = ProviderConfig(name="p", type=ProviderType.OPENAI, api_key_env="MY_KEY_VAR")
    error = error_for_status(status, "upstream words", provider=config, retry_after=3.0)
    assert (error.kind, error.reason, error.retryable, error.http_status) == (code, reason, retryable, status)
    assert "upstream words" in error.message
    assert error.metadata == {"provider": "p", "http_status": str(status)}
    if status in (401, 403):
        assert "MY_KEY_VAR" in error.message
