"""An item's request as the gateway stores it: an OpenAI Chat Completions body (what the HTTP door's batch files
hold too), read back into a ChatRequest when the item is sent, billed or sent again."""

from __future__ import annotations

from typing import Any

from gateway.chat import ChatRequest
from gateway.openai_schema import chat_request
from gateway.providers.openai import openai_body


def stored_body(request: ChatRequest) -> dict[str, Any]:
    """A request as an OpenAI Chat Completions body: how an item is stored, and what `loaded` reads back."""
    body = openai_body(request, max_tokens_field="max_tokens", model=request.model)
    if request.metadata:
        body["metadata"] = dict(request.metadata)
    return body


def loaded(body: dict[str, Any]) -> ChatRequest:
    return chat_request(body)[0]
