"""Anthropic Messages API (POST {base_url}/v1/messages).

Reference: https://docs.anthropic.com/en/api/messages and .../messages-streaming (anthropics/anthropic-sdk-python).
Mapping decisions:
- System messages, wherever they stand, become the top-level `system` (joined by blank lines): the API has no
  system role in `messages`.
- Tool results (our role "tool") become `tool_result` blocks in a user turn; consecutive turns of the same role are
  merged into one turn so that parallel tool results sit together right after the assistant's `tool_use` blocks.
- `max_tokens` is required: the request's, else the model's configured max_output_tokens.
- `response_format` has no direct equivalent in the Messages API: JSON is asked for in the system prompt (with the
  schema when one is given). `seed` is not supported and not sent.
- Usage: prompt_tokens = input_tokens + cache_read_input_tokens + cache_creation_input_tokens, i.e. every input token
  billed (Anthropic reports the three apart; input_tokens alone excludes cached ones); cached_prompt_tokens =
  cache_read_input_tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.chat import ChatDelta, ChatRequest, ChatResult, Message, ToolCall, ToolCallDelta, Usage
from gateway.config.schema import ModelConfig
from gateway.errors import ProviderError
from gateway.providers.http import (
    HttpProvider,
    SSEEvent,
    StreamDecoder,
    UpstreamRequest,
    disconnected,
    error_for_status,
    parse_retry_after,
)
from gateway.providers.json_mode import json_instruction
from gateway.providers.media import inline_image

DEFAULT_VERSION = "2023-06-01"

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# error.type -> the HTTP status Anthropic documents for it (in-stream `event: error` carries only the type).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text()}]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for part in message.parts:
        if isinstance(part, str):
            if part:
                blocks.append({"type": "text", "text": part})
            continue
        inline = inline_image(part)
        if inline is not None:
            source = {"type": "base64", "media_type": inline.mime_type, "data": inline.base64_data}
        else:
            source = {"type": "url", "url": part.url}
        blocks.append({"type": "image", "source": source})
    for call in message.tool_calls:
        try:
            arguments = orjson.loads(call.arguments_json) if call.arguments_json else {}
        except orjson.JSONDecodeError:
            arguments = {}
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments})
    return blocks


def anthropic_messages(messages: list[Message]) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.text())
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _content_blocks(message)
        if not blocks:
            continue  # the API rejects empty content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(s for s in system if s), turns


def anthropic_usage(raw: Mapping[str, Any] | None, previous: Usage | None = None) -> Usage | None:
    if not raw:
        return previous
    base = previous or Usage()
    cache_read = raw.get("cache_read_input_tokens")
    cache_write = raw.get("cache_creation_input_tokens")
    input_tokens = raw.get("input_tokens")
    if input_tokens is not None or cache_read is not None or cache_write is not None:
        prompt = int(input_tokens or 0) + int(cache_read or 0) + int(cache_write or 0)
        cached = int(cache_read or 0)
    else:
        prompt, cached = base.prompt_tokens, base.cached_prompt_tokens
    output = raw.get("output_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=int(output) if output is not None else base.completion_tokens,
        cached_prompt_tokens=cached,
    )


class AnthropicStreamDecoder(StreamDecoder):
    """message_start → (content_block_start, content_block_delta*, content_block_stop)* → message_delta →
    message_stop, with `ping` anywhere and `error` possibly mid-stream. The final delta (at message_stop) carries the
    stop reason and the usage assembled from message_start (input side) and message_delta (cumulative output)."""

    def __init__(self, provider: AnthropicProvider, fallback_model: str) -> None:
        self.provider = provider
        self.model = fallback_model
        self.usage: Usage | None = None
        self.stop_reason = ""
        self.tool_index: dict[int, int] = {}
        """Content block index -> index among tool calls (what ToolCallDelta.index means)."""

    def on_event(self, event: SSEEvent) -> list[ChatDelta]:
        data = orjson.loads(event.data)
        kind = data.get("type") or event.event
        if kind == "content_block_delta":
            delta = data["delta"]
            if delta.get("type") == "text_delta":
                return [ChatDelta(text=delta["text"], upstream_model=self.model)] if delta["text"] else []
            if delta.get("type") == "input_json_delta":
                index = self.tool_index.get(int(data["index"]))
                if index is None:
                    raise ValueError("input_json_delta outside a tool_use block")
                fragment = delta.get("partial_json") or ""
                tool_delta = ToolCallDelta(index=index, arguments_delta=fragment)
                return [ChatDelta(tool_calls=[tool_delta], upstream_model=self.model)] if fragment else []
            return []  # thinking_delta, signature_delta, citations_delta: not part of the answer text
        if kind == "content_block_start":
            block = data["content_block"]
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[int(data["index"])] = index
                tool_delta = ToolCallDelta(index=index, id=block["id"], name=block["name"])
                return [ChatDelta(tool_calls=[tool_delta], upstream_model=self.model)]
            if block.get("type") == "text" and block.get("text"):
                return [ChatDelta(text=block["text"], upstream_model=self.model)]
            return []
        if kind == "message_start":
            message = data["message"]
            self.model = message.get("model") or self.model
            self.usage = anthropic_usage(message.get("usage"))
            return []
        if kind == "message_delta":
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self.stop_reason = STOP_REASONS.get(reason, "stop")
            self.usage = anthropic_usage(data.get("usage"), self.usage)
            return []
        if kind == "message_stop":
            self.done = True
            return [ChatDelta(finish_reason=self.stop_reason or "stop", usage=self.usage, upstream_model=self.model)]
        if kind == "error":
            raise self.provider.error_from_body(data)
        return []  # ping, content_block_stop, and event types added later

    def finish(self) -> list[ChatDelta]:
        if self.done:
            return []
        raise disconnected(self.provider.name, "mid-stream (the stream ended before message_stop)")


_EPHEMERAL = {"type": "ephemeral"}


def _mark_prefix(body: dict[str, Any]) -> None:
    """One cache breakpoint at the end of the shared prefix (tools, then system, then every turn but the last: the
    order Anthropic renders a prompt in), so calls sharing it read it from the prompt cache. At most 4 breakpoints
    are allowed; this sets one."""
    messages = body["messages"]
    if len(messages) > 1:
        content = messages[-2]["content"]  # a list of blocks, never empty (anthropic_messages)
        content[-1] = {**content[-1], "cache_control": _EPHEMERAL}
    elif body.get("system"):
        body["system"] = [{"type": "text", "text": body["system"], "cache_control": _EPHEMERAL}]
    elif body.get("tools"):
        body["tools"][-1] = {**body["tools"][-1], "cache_control": _EPHEMERAL}


class AnthropicProvider(HttpProvider):
    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        system, messages = anthropic_messages(request.messages)
        instruction = json_instruction(request)
        if instruction:
            system = f"{system}\n\n{instruction}" if system else instruction
        body: dict[str, Any] = {
            "model": model.upstream,
            "max_tokens": request.max_tokens if request.max_tokens is not None else model.max_output_tokens,
            "messages": messages,
        }
        if system:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop_sequences"] = list(request.stop)
        if request.user:
            body["metadata"] = {"user_id": request.user}
        if request.tools:
            body["tools"] = [
                {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "input_schema": tool.parameters or {"type": "object", "properties": {}},
                }
                for tool in request.tools
            ]
            choice = request.tool_choice
            if choice in ("", "auto"):
                pass
            elif choice == "required":
                body["tool_choice"] = {"type": "any"}
            elif choice == "none":
                body["tool_choice"] = {"type": "none"}
            else:
                body["tool_choice"] = {"type": "tool", "name": choice}
        if request.prompt_cache:
            _mark_prefix(body)
        if stream:
            body["stream"] = True
        headers = {
            "x-api-key": self.require_api_key(),
            "anthropic-version": self.config.api_version or DEFAULT_VERSION,
        }
        return UpstreamRequest(url=f"{self.config.url}/v1/messages", headers=headers, body=body)

    def parse_response(self, payload: Any, model: ModelConfig) -> ChatResult:
        if payload.get("type") == "error":
            raise self.error_from_body(payload)
        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        for block in payload["content"]:
            if block["type"] == "text":
                texts.append(block["text"])
            elif block["type"] == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                tool_calls.append(ToolCall(id=block["id"], name=block["name"], arguments_json=arguments))
        return ChatResult(
            upstream_id=str(payload.get("id") or ""),
            upstream_model=str(payload.get("model") or model.upstream),
            text="".join(texts),
            finish_reason=STOP_REASONS.get(payload.get("stop_reason") or "end_turn", "stop"),
            usage=anthropic_usage(payload.get("usage")),
            tool_calls=tool_calls,
        )

    def stream_decoder(self, request: ChatRequest, model: ModelConfig) -> StreamDecoder:
        return AnthropicStreamDecoder(self, model.upstream)

    def retry_after(self, headers: Any, payload: Any) -> float | None:
        return parse_retry_after(headers)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        error = super().map_error(status, headers, body)
        if status == 429 and error.retry_after is None and b"spend_limit" in body:
            # A monthly spend cap also comes as rate_limit_error, without retry-after: retrying cannot help.
            error.retryable = False
        return error

    def error_from_body(self, payload: Mapping[str, Any]) -> ProviderError:
        error = payload.get("error") or {}
        kind = str(error.get("type") or "api_error")
        message = self.redact(f"{kind}: {error.get('message') or ''}")
        return error_for_status(ERROR_STATUS.get(kind, 500), message, provider=self.config)
