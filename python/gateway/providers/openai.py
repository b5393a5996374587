"""OpenAI Chat Completions (POST {base_url}/chat/completions) and Embeddings (POST {base_url}/embeddings), the wire
formats Azure and most servers also speak.

Reference: https://platform.openai.com/docs/api-reference/chat (openai/openai-openapi). The output bound is sent as
`max_completion_tokens`: `max_tokens` is deprecated there and rejected by the o-series reasoning models. Parameters
the gateway does not model (ChatRequest.passthrough) are sent as given, and the answer's `logprobs` come back.

Embeddings are asked for as `encoding_format: base64` (packed float32, as OpenAI's own SDK asks): a third of the
bytes of JSON numbers, and decoding it is a copy instead of parsing thousands of floats per input.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.chat import ChatDelta, ChatRequest, ChatResult, Message, ToolCall, ToolCallDelta, Usage
from gateway.config.schema import ModelConfig
from gateway.embeddings import EmbedRequest, EmbedResult, unpack_base64, vector
from gateway.errors import ProviderError
from gateway.providers.http import (
    HttpProvider,
    SSEEvent,
    StreamDecoder,
    UpstreamRequest,
    disconnected,
    error_for_status,
    parse_duration,
    parse_retry_after,
)
from gateway.providers.media import image_url

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

# In-stream errors carry no HTTP status; their `type`/`code` tells which class they belong to.
_STREAM_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "api_error": 500,
    "overloaded_error": 503,
    "timeout": 504,
}


def openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        entry: dict[str, Any] = {"role": message.role}
        if message.role == "tool":
            entry["tool_call_id"] = message.tool_call_id
            entry["content"] = message.text()
        elif message.parts and message.role == "user":
            parts: list[dict[str, Any]] = []
            if message.content:
                parts.append({"type": "text", "text": message.content})
            for part in message.parts:
                if isinstance(part, str):
                    parts.append({"type": "text", "text": part})
                else:
                    image: dict[str, Any] = {"url": image_url(part)}
                    if part.detail:
                        image["detail"] = part.detail
                    parts.append({"type": "image_url", "image_url": image})
            entry["content"] = parts
        else:
            text = message.text()
            if message.role == "assistant" and message.tool_calls:
                entry["content"] = text or None
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                    for c in message.tool_calls
                ]
            else:
                entry["content"] = text
        if message.name and message.role != "tool":
            entry["name"] = message.name
        out.append(entry)
    return out


def openai_body(request: ChatRequest, *, max_tokens_field: str, model: str | None = None) -> dict[str, Any]:
    """Every field but `stream` and `stream_options`, which depend on the call; `model` first when given (Azure
    names the deployment in the URL instead)."""
    body: dict[str, Any] = {"model": model} if model is not None else {}
    body["messages"] = openai_messages(request.messages)
    if request.max_tokens is not None:
        body[max_tokens_field] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if request.user:
        body["user"] = request.user
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.parameters or {"type": "object", "properties": {}},
                },
            }
            for tool in request.tools
        ]
        if request.tool_choice:
            body["tool_choice"] = (
                request.tool_choice
                if request.tool_choice in ("auto", "none", "required")
                else {"type": "function", "function": {"name": request.tool_choice}}
            )
    fmt = request.response_format
    if fmt is not None and fmt.kind == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.kind == "json_schema":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.schema_name or "response", "schema": fmt.schema or {"type": "object"}},
        }
    if request.passthrough:
        body.update(request.passthrough)
    return body


def openai_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        cached_prompt_tokens=int(details.get("cached_tokens") or 0),
    )


class OpenAIStreamDecoder(StreamDecoder):
    """Chunks carry `choices[0].delta`; the finish_reason chunk is followed (with include_usage) by a chunk with empty
    choices and the usage, then `[DONE]`. The final delta joins finish_reason and usage."""

    def __init__(self, provider: OpenAIProvider, fallback_model: str) -> None:
        self.provider = provider
        self.model = fallback_model
        self.finish_reason = ""
        self.usage: Usage | None = None

    def on_event(self, event: SSEEvent) -> list[ChatDelta]:
        if event.data == "[DONE]":
            self.done = True
            return [self._final()]
        chunk = orjson.loads(event.data)
        if chunk.get("error"):
            raise self.provider.stream_error(chunk["error"])
        if chunk.get("object") == "error":  # vLLM's older in-stream error: the error object is the chunk itself
            raise self.provider.stream_error(chunk)
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = openai_usage(chunk["usage"])
        choices = chunk.get("choices") or []
        if not choices:
            return []
        choice = choices[0]
        delta = choice.get("delta") or {}
        text = delta.get("content") or ""
        tool_calls = [
            ToolCallDelta(
                index=int(tc.get("index", i)),
                id=tc.get("id") or "",
                name=(tc.get("function") or {}).get("name") or "",
                arguments_delta=(tc.get("function") or {}).get("arguments") or "",
            )
            for i, tc in enumerate(delta.get("tool_calls") or ())
        ]
        if choice.get("finish_reason"):
            self.finish_reason = FINISH_REASONS.get(choice["finish_reason"], "stop")
        logprobs = choice.get("logprobs")
        if text or tool_calls or logprobs:
            return [ChatDelta(text=text, tool_calls=tool_calls, upstream_model=self.model, logprobs=logprobs)]
        return []

    def finish(self) -> list[ChatDelta]:
        if self.done:
            return []
        if self.finish_reason:  # some compatible servers end the body without [DONE]
            self.done = True
            return [self._final()]
        raise disconnected(self.provider.name, "mid-stream (the stream ended before its finish_reason)")

    def _final(self) -> ChatDelta:
        return ChatDelta(finish_reason=self.finish_reason or "stop", usage=self.usage, upstream_model=self.model)


class OpenAIProvider(HttpProvider):
    """api.openai.com or any server speaking its Chat Completions API with the same auth."""

    max_tokens_field = "max_completion_tokens"
    send_model = True
    stream_usage = True
    accepts_passthrough = True
    embed_batch = 2048
    """OpenAI's limit of inputs per embeddings request."""
    embed_encoding = "base64"

    def url(self, model: ModelConfig, endpoint: str = "chat/completions") -> str:
        return f"{self.config.url}/{endpoint}"

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.require_api_key()}"}

    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        body = openai_body(
            request, max_tokens_field=self.max_tokens_field, model=model.upstream if self.send_model else None
        )
        if stream:
            body["stream"] = True
            if self.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return UpstreamRequest(url=self.url(model), headers=self.auth_headers(), body=body)

    def parse_response(self, payload: Any, model: ModelConfig) -> ChatResult:
        choice = payload["choices"][0]
        message = choice["message"]
        tool_calls = [
            ToolCall(id=tc["id"], name=tc["function"]["name"], arguments_json=tc["function"].get("arguments") or "{}")
            for tc in message.get("tool_calls") or ()
        ]
        return ChatResult(
            upstream_id=str(payload.get("id") or ""),
            upstream_model=str(payload.get("model") or model.upstream),
            text=message.get("content") or message.get("refusal") or "",
            finish_reason=FINISH_REASONS.get(choice.get("finish_reason") or "stop", "stop"),
            usage=openai_usage(payload.get("usage")),
            tool_calls=tool_calls,
            logprobs=choice.get("logprobs"),
        )

    def build_embed_request(self, request: EmbedRequest, model: ModelConfig) -> UpstreamRequest:
        body: dict[str, Any] = {"input": request.inputs, "encoding_format": self.embed_encoding}
        if self.send_model:
            body["model"] = model.upstream
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user:
            body["user"] = request.user
        return UpstreamRequest(url=self.url(model, "embeddings"), headers=self.auth_headers(), body=body)

    def parse_embed_response(self, payload: Any, model: ModelConfig) -> EmbedResult:
        items = sorted(payload["data"], key=lambda item: int(item["index"]))
        vectors = [
            unpack_base64(item["embedding"]) if isinstance(item["embedding"], str) else vector(item["embedding"])
            for item in items
        ]
        usage = payload.get("usage") or {}
        reported = usage.get("prompt_tokens")
        return EmbedResult(
            upstream_model=str(payload.get("model") or model.upstream),
            vectors=vectors,
            prompt_tokens=int(reported) if reported is not None else None,
        )

    def stream_decoder(self, request: ChatRequest, model: ModelConfig) -> StreamDecoder:
        return OpenAIStreamDecoder(self, model.upstream)

    def retry_after(self, headers: Any, payload: Any) -> float | None:
        explicit = parse_retry_after(headers)
        if explicit is not None:
            return explicit
        # Without Retry-After, the reset time of whichever limit is exhausted (both when unknown: the longer one).
        resets: list[float] = []
        for kind in ("requests", "tokens"):
            reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}", ""))
            if reset is not None and headers.get(f"x-ratelimit-remaining-{kind}") in (None, "0"):
                resets.append(reset)
        return max(resets) if resets else None

    def stream_error(self, error: Any) -> ProviderError:
        """An error sent as a stream event: `{"error": {"message", "type", "code"}}` (OpenAI; Azure puts the HTTP
        status in `code`), a bare string (Ollama), or vLLM's `{"object": "error", ..., "code": 400}`."""
        if not isinstance(error, dict):
            error = {"message": str(error)}
        kind = str(error.get("code") or error.get("type") or "")
        if kind.isdigit():  # Azure puts the HTTP status in `code` ("429")
            status = int(kind)
        else:
            status = _STREAM_ERROR_STATUS.get(kind) or _STREAM_ERROR_STATUS.get(str(error.get("type") or ""), 500)
        return error_for_status(status, self.redact(str(error.get("message") or kind)), provider=self.config)
