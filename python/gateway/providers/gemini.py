"""Google Gemini API (generativelanguage.googleapis.com): generateContent and streamGenerateContent?alt=sse.

Reference: https://ai.google.dev/api/generate-content (googleapis/python-genai). Mapping decisions:
- Roles: user -> "user", assistant -> "model"; system messages become `systemInstruction`; tool results become
  `functionResponse` parts in a user turn (the function name is looked up from the assistant's earlier call when the
  tool message does not name it); consecutive turns of the same role are merged.
- JSON Schemas (tool parameters, response schema) are sent as `parametersJsonSchema` / `responseJsonSchema`, which
  take JSON Schema as is; the older `parameters` / `responseSchema` take an OpenAPI subset that rejects common JSON
  Schema keywords (additionalProperties, $defs...).
- Gemini's function calls may carry no id: the adapter then makes one (`call_<n>`), stable within one answer.
- Usage: prompt_tokens = promptTokenCount (+ toolUsePromptTokenCount), which already includes cached tokens;
  completion_tokens = candidatesTokenCount + thoughtsTokenCount (thinking is billed as output);
  cached_prompt_tokens = cachedContentTokenCount.
- An invalid key comes back as HTTP 400 with reason API_KEY_INVALID: it maps to PROVIDER_AUTH_FAILED like a 401.
- Embeddings: one input goes to `embedContent`, several to `batchEmbedContents` (at most 100 a request, Gemini's
  limit; the pipeline splits longer batches), with `outputDimensionality` for shorter vectors. The API reports no
  tokens for embeddings unless it sends `usageMetadata`, so the gateway counts them (an estimate, labelled so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from gateway.chat import ChatDelta, ChatRequest, ChatResult, Message, ToolCall, ToolCallDelta, Usage
from gateway.config.schema import ModelConfig
from gateway.embeddings import EmbedRequest, EmbedResult, vector
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
from gateway.providers.media import guess_mime_type, inline_image

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "error",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "OTHER": "error",
}

# google.rpc status names as HTTP statuses, for errors that arrive inside a stream.
STATUS_HTTP = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

_MODEL_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")


def _function_names(messages: list[Message]) -> dict[str, str]:
    return {call.id: call.name for message in messages for call in message.tool_calls}


def _parts(message: Message, names: Mapping[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        text = message.text()
        try:
            response = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            response = None
        if not isinstance(response, dict):  # functionResponse.response must be a JSON object
            response = {"result": text}
        name = message.name or names.get(message.tool_call_id, "")
        return [{"functionResponse": {"name": name, "response": response}}]
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"text": message.content})
    for part in message.parts:
        if isinstance(part, str):
            if part:
                parts.append({"text": part})
            continue
        inline = inline_image(part)
        if inline is not None:
            parts.append({"inlineData": {"mimeType": inline.mime_type, "data": inline.base64_data}})
        else:
            parts.append({"fileData": {"mimeType": guess_mime_type(part), "fileUri": part.url}})
    for call in message.tool_calls:
        try:
            args = orjson.loads(call.arguments_json) if call.arguments_json else {}
        except orjson.JSONDecodeError:
            args = {}
        parts.append({"functionCall": {"name": call.name, "args": args}})
    return parts


def gemini_contents(messages: list[Message]) -> tuple[list[str], list[dict[str, Any]]]:
    names = _function_names(messages)
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append(message.text())
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return [s for s in system if s], contents


def gemini_usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    return Usage(
        prompt_tokens=int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0),
        completion_tokens=int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0),
        cached_prompt_tokens=int(raw.get("cachedContentTokenCount") or 0),
    )


def _finish(raw: str | None, has_calls: bool) -> str:
    reason = FINISH_REASONS.get(raw or "STOP", "error")
    return "tool_calls" if has_calls and reason == "stop" else reason


class GeminiStreamDecoder(StreamDecoder):
    """Each event is a whole GenerateContentResponse holding the new parts; usageMetadata is cumulative; the last
    event has the finishReason, then the body ends (no [DONE]). The final delta is emitted at the end of the body."""

    def __init__(self, provider: GeminiProvider, fallback_model: str) -> None:
        self.provider = provider
        self.model = fallback_model
        self.finish_reason = ""
        self.usage: Usage | None = None
        self.calls = 0

    def on_event(self, event: SSEEvent) -> list[ChatDelta]:
        chunk = orjson.loads(event.data)
        if chunk.get("error"):
            raise self.provider.error_from_body(chunk)
        self.model = chunk.get("modelVersion") or self.model
        self.usage = gemini_usage(chunk.get("usageMetadata")) or self.usage
        candidates = chunk.get("candidates") or []
        if not candidates:
            if (chunk.get("promptFeedback") or {}).get("blockReason"):
                self.finish_reason = "content_filter"
            return []
        candidate = candidates[0]
        texts: list[str] = []
        tool_calls: list[ToolCallDelta] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" in part and not part.get("thought"):
                texts.append(part["text"])
            elif "functionCall" in part:
                call = part["functionCall"]
                arguments = orjson.dumps(call.get("args") or {}).decode()
                call_id = call.get("id") or f"call_{self.calls}"
                tool_calls.append(ToolCallDelta(self.calls, call_id, call["name"], arguments))
                self.calls += 1
        if candidate.get("finishReason"):
            self.finish_reason = _finish(candidate["finishReason"], self.calls > 0)
        text = "".join(texts)
        return [ChatDelta(text=text, tool_calls=tool_calls, upstream_model=self.model)] if text or tool_calls else []

    def finish(self) -> list[ChatDelta]:
        if not self.finish_reason:
            raise disconnected(self.provider.name, "mid-stream (the stream ended before its finishReason)")
        self.done = True
        return [ChatDelta(finish_reason=self.finish_reason, usage=self.usage, upstream_model=self.model)]


class GeminiProvider(HttpProvider):
    embed_batch = 100

    def _model_path(self, model: ModelConfig) -> str:
        name = model.upstream.removeprefix("models/")
        return quote(name, safe="") if not _MODEL_NAME.match(name) else name

    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        system, contents = gemini_contents(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
        generation: dict[str, Any] = {}
        if request.max_tokens is not None:
            generation["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        if request.top_p is not None:
            generation["topP"] = request.top_p
        if request.stop:
            generation["stopSequences"] = list(request.stop)
        if request.seed is not None:
            generation["seed"] = request.seed
        fmt = request.response_format
        if fmt is not None and fmt.kind != "text":
            generation["responseMimeType"] = "application/json"
            if fmt.kind == "json_schema" and fmt.schema is not None:
                generation["responseJsonSchema"] = fmt.schema
        if generation:
            body["generationConfig"] = generation
        if request.tools:
            declarations = []
            for tool in request.tools:
                declaration: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    declaration["description"] = tool.description
                if tool.parameters:
                    declaration["parametersJsonSchema"] = tool.parameters
                declarations.append(declaration)
            body["tools"] = [{"functionDeclarations": declarations}]
            choice = request.tool_choice
            if choice and choice != "auto":
                config: dict[str, Any] = {"mode": {"none": "NONE", "required": "ANY"}.get(choice, "ANY")}
                if choice not in ("none", "required"):
                    config["allowedFunctionNames"] = [choice]
                body["toolConfig"] = {"functionCallingConfig": config}
        method = "streamGenerateContent" if stream else "generateContent"
        return UpstreamRequest(
            url=f"{self.config.url}/v1beta/models/{self._model_path(model)}:{method}",
            headers={"x-goog-api-key": self.require_api_key()},
            body=body,
            params={"alt": "sse"} if stream else {},
        )

    def parse_response(self, payload: Any, model: ModelConfig) -> ChatResult:
        if "candidates" not in payload and "promptFeedback" not in payload:
            raise KeyError("candidates")
        candidates = payload.get("candidates") or []
        texts: list[str] = []
        calls: list[ToolCall] = []
        finish = "content_filter"  # no candidate: the prompt itself was blocked (promptFeedback.blockReason)
        if candidates:
            candidate = candidates[0]
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "text" in part and not part.get("thought"):
                    texts.append(part["text"])
                elif "functionCall" in part:
                    call = part["functionCall"]
                    arguments = orjson.dumps(call.get("args") or {}).decode()
                    calls.append(ToolCall(call.get("id") or f"call_{len(calls)}", call["name"], arguments))
            finish = _finish(candidate.get("finishReason"), bool(calls))
        return ChatResult(
            upstream_id=str(payload.get("responseId") or ""),
            upstream_model=str(payload.get("modelVersion") or model.upstream),
            text="".join(texts),
            finish_reason=finish,
            usage=gemini_usage(payload.get("usageMetadata")),
            tool_calls=calls,
        )

    def stream_decoder(self, request: ChatRequest, model: ModelConfig) -> StreamDecoder:
        return GeminiStreamDecoder(self, model.upstream)

    def build_embed_request(self, request: EmbedRequest, model: ModelConfig) -> UpstreamRequest:
        path = self._model_path(model)

        def one(text: str) -> dict[str, Any]:
            item: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
            if request.dimensions is not None:
                item["outputDimensionality"] = request.dimensions
            return item

        if len(request.inputs) == 1:
            method, body = "embedContent", one(request.inputs[0])
        else:
            method = "batchEmbedContents"
            body = {"requests": [{"model": f"models/{path}", **one(text)} for text in request.inputs]}
        return UpstreamRequest(
            url=f"{self.config.url}/v1beta/models/{path}:{method}",
            headers={"x-goog-api-key": self.require_api_key()},
            body=body,
        )

    def parse_embed_response(self, payload: Any, model: ModelConfig) -> EmbedResult:
        embeddings = [payload["embedding"]] if "embedding" in payload else payload["embeddings"]
        usage = payload.get("usageMetadata") or {}
        reported = usage.get("promptTokenCount")
        return EmbedResult(
            upstream_model=model.upstream,
            vectors=[vector(item["values"]) for item in embeddings],
            prompt_tokens=int(reported) if reported is not None else None,
        )

    def retry_after(self, headers: Any, payload: Any) -> float | None:
        explicit = parse_retry_after(headers)
        if explicit is not None:
            return explicit
        return _retry_delay(payload)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        if status == 400 and b"API_KEY_INVALID" in body:
            status = 401
        return super().map_error(status, headers, body)

    def error_from_body(self, payload: Mapping[str, Any]) -> ProviderError:
        error = payload.get("error") or {}
        status = int(error.get("code") or STATUS_HTTP.get(str(error.get("status") or ""), 500))
        if status == 400 and "API_KEY_INVALID" in orjson.dumps(error).decode():
            status = 401
        return error_for_status(
            status,
            self.redact(str(error.get("message") or error.get("status") or "")),
            provider=self.config,
            retry_after=_retry_delay(payload),
        )


def _retry_delay(payload: Any) -> float | None:
    """google.rpc.RetryInfo.retryDelay ("30s", "1.5s") from error.details, which Gemini's 429s carry."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return parse_duration(str(detail.get("retryDelay") or ""))
    return None
