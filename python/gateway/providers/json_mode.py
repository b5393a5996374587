"""JSON answers from APIs without a JSON mode (Anthropic Messages, Bedrock Converse): asked for in the system prompt."""

from __future__ import annotations

import orjson

from gateway.chat import ChatRequest


def json_instruction(request: ChatRequest) -> str:
    """The instruction asking for the request's response_format, with its schema when one is given; "" for text."""
    fmt = request.response_format
    if fmt is None or fmt.kind == "text":
        return ""
    if fmt.kind == "json_schema" and fmt.schema is not None:
        schema = orjson.dumps(fmt.schema).decode()
        return f"Respond with a single JSON value that conforms to this JSON Schema, and nothing else:\n{schema}"
    return "Respond with a single JSON object, and nothing else."
