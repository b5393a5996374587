"""OpenAI's batch input format, one JSON object a line: `{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`. Read by the CLI (`gateway batch submit`) and the HTTP front door (POST
/v1/batches), so a file made for OpenAI's Batch API works with either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import InvalidRequest

ENDPOINT = "/v1/chat/completions"
ENDPOINTS = frozenset({ENDPOINT, "/chat/completions"})
"""OpenAI's line URL, and Azure OpenAI's."""


@dataclass(frozen=True, slots=True)
class InputLine:
    custom_id: str
    body: dict[str, Any]


def read_input(content: bytes) -> list[InputLine]:
    """The lines of a batch input file; INVALID_ARGUMENT naming the first bad line."""
    lines = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _bad(number, "is not JSON") from None
        if not isinstance(line, dict) or not isinstance(line.get("body"), dict) or not line.get("custom_id"):
            raise _bad(number, "needs a custom_id and a body object")
        if line.get("url", ENDPOINT) not in ENDPOINTS or line.get("method", "POST") != "POST":
            raise _bad(number, f"only POST {ENDPOINT} lines can be batched")
        lines.append(InputLine(str(line["custom_id"]), line["body"]))
    if not lines:
        raise InvalidRequest("the batch input file has no lines", reason="EMPTY_BATCH")
    return lines


def _bad(number: int, what: str) -> InvalidRequest:
    return InvalidRequest(f"batch input line {number} {what}", reason="BAD_INPUT_LINE", metadata={"line": str(number)})
