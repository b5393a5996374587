"""A fake of Anthropic's Messages API (POST /v1/messages), streaming included.

Shapes from the official reference (anthropics/anthropic-sdk-python): `message` objects with content blocks, the
event sequence message_start, content_block_start/delta/stop (text_delta, input_json_delta), message_delta,
message_stop, with `ping` events, and `{"type": "error", "error": {"type", "message"}, "request_id"}` errors (also as
an `event: error` mid-stream). Validation rejects what the real API rejects: a missing anthropic-version header or
max_tokens, a "system" role inside messages, empty text blocks, unknown fields, images with an unsupported media type,
tool_result blocks that answer no tool_use of the previous assistant turn, and unanswered tool_use blocks.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import Answer, FakeProvider, Recorded, Rejected

TOP_LEVEL = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
DEFAULT_MESSAGES = {
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "model: claude-unknown",
    429: "Number of request tokens has exceeded your per-minute rate limit (https://docs.anthropic.com/en/api/rate-limits)",
    500: "Internal server error",
    529: "Overloaded",
}


class FakeAnthropic(FakeProvider):
    kind = "anthropic"
    provider_type = "anthropic"
    default_model = "claude-3-5-haiku-20241022"

    def __init__(self, *, api_key: str | None = "sk-ant-test-0123456789abcdef", models: set[str] | None = None) -> None:
        super().__init__(api_key=api_key, models=models)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.handle)

    # -- validation --------------------------------------------------------------------------------------------------

    def validate(self, request: web.Request, recorded: Recorded) -> None:
        if request.headers.get("x-api-key") != self.api_key:
            raise Rejected(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise Rejected(400, "anthropic-version: header is required")
        body = recorded.body
        for key in body:
            if key not in TOP_LEVEL:
                raise Rejected(400, f"{key}: Extra inputs are not permitted")
        model = body.get("model")
        if not isinstance(model, str):
            raise Rejected(400, "model: Field required")
        if self.models is not None and model not in self.models:
            raise Rejected(404, f"model: {model}")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise Rejected(400, "max_tokens: Field required")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise Rejected(400, "max_tokens: Input should be greater than or equal to 1")
        if "temperature" in body and not 0 <= body["temperature"] <= 1:
            raise Rejected(400, "temperature: Input should be less than or equal to 1")
        system = body.get("system")
        if system is not None and not isinstance(system, str | list):
            raise Rejected(400, "system: Input should be a valid string")
        _check_breakpoints(body)
        stops = body.get("stop_sequences")
        if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) and s.strip() for s in stops)):
            raise Rejected(400, "stop_sequences: each stop sequence must contain non-whitespace")
        tools = self._check_tools(body.get("tools"))
        self._check_tool_choice(body.get("tool_choice"), tools)
        self._check_messages(body.get("messages"))

    def _check_messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            raise Rejected(400, "messages: at least one message is required")
        previous_tool_uses: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                raise Rejected(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                raise Rejected(400, f"messages.{i}: all messages must have non-empty content")
            results: set[str] = set()
            uses: set[str] = set()
            for j, block in enumerate(blocks):
                kind = block.get("type")
                where = f"messages.{i}.content.{j}"
                if kind == "text":
                    if not isinstance(block.get("text"), str) or not block["text"]:
                        raise Rejected(400, "messages: text content blocks must be non-empty")
                elif kind == "image":
                    self._check_image(block.get("source"), where)
                elif kind == "tool_use":
                    if role != "assistant":
                        raise Rejected(400, f"{where}: tool_use blocks are only allowed in assistant messages")
                    if not isinstance(block.get("input"), dict) or not block.get("id") or not block.get("name"):
                        raise Rejected(400, f"{where}.input: Input should be a valid dictionary")
                    uses.add(block["id"])
                elif kind == "tool_result":
                    if role != "user":
                        raise Rejected(400, f"{where}: tool_result blocks are only allowed in user messages")
                    if block.get("tool_use_id") not in previous_tool_uses:
                        raise Rejected(
                            400,
                            f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                            f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                            "`tool_use` block in the previous message.",
                        )
                    results.add(block["tool_use_id"])
                else:
                    raise Rejected(
                        400,
                        f"{where}.type: Input tag '{kind}' found using 'type' does not match any of the expected tags",
                    )
            if previous_tool_uses and not previous_tool_uses <= results:
                missing = ", ".join(sorted(previous_tool_uses - results))
                raise Rejected(
                    400,
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {missing}. Each `tool_use` block must have a corresponding "
                    "`tool_result` block in the next message.",
                )
            previous_tool_uses = uses

    def _check_image(self, source: Any, where: str) -> None:
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "base64":
            if source.get("media_type") not in MEDIA_TYPES:
                raise Rejected(
                    400,
                    f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                    "'image/png', 'image/gif' or 'image/webp'",
                )
            try:
                base64.b64decode(source.get("data", ""), validate=True)
            except ValueError:
                raise Rejected(400, f"{where}.image.source.base64: invalid base64 data") from None
        elif kind == "url":
            if not str(source.get("url", "")).startswith(("http://", "https://")):
                raise Rejected(400, f"{where}.image.source.url: invalid URL")
        else:
            raise Rejected(400, f"{where}.image.source: Input tag '{kind}' does not match any of the expected tags")

    def _check_tools(self, tools: Any) -> set[str]:
        if tools is None:
            return set()
        names: set[str] = set()
        for i, tool in enumerate(tools):
            name = tool.get("name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise Rejected(400, f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Rejected(400, f"tools.{i}.custom.input_schema: Field required (type must be 'object')")
            extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
            if extra:
                raise Rejected(400, f"tools.{i}.custom.{sorted(extra)[0]}: Extra inputs are not permitted")
            names.add(name)
        return names

    def _check_tool_choice(self, choice: Any, tools: set[str]) -> None:
        if choice is None:
            return
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise Rejected(400, "tool_choice: Input tag does not match any of the expected tags")
        if kind == "tool" and choice.get("name") not in tools:
            raise Rejected(400, f"tool_choice.tool.name: tool '{choice.get('name')}' not found in tools")

    # -- answers -----------------------------------------------------------------------------------------------------

    def is_stream(self, request: web.Request, recorded: Recorded) -> bool:
        return bool(recorded.body.get("stream"))

    def _usage(self, answer: Answer, output: int) -> dict[str, Any]:
        # input_tokens excludes the cached ones, as Anthropic reports them.
        return {
            "input_tokens": answer.prompt_tokens - answer.cached_tokens - answer.cache_creation_tokens,
            "cache_creation_input_tokens": answer.cache_creation_tokens,
            "cache_read_input_tokens": answer.cached_tokens,
            "output_tokens": output,
            "service_tier": "standard",
        }

    def _stop(self, answer: Answer) -> str:
        return answer.finish or ("tool_use" if answer.tool_calls else "end_turn")

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if answer.text:
            content.append({"type": "text", "text": answer.text})
        content.extend(
            {"type": "tool_use", "id": f"toolu_{i}fake", "name": name, "input": args}
            for i, (name, args) in enumerate(answer.tool_calls)
        )
        return {
            "id": f"msg_{len(self.requests)}fake",
            "type": "message",
            "role": "assistant",
            "model": answer.model or self.requested_model(recorded),
            "content": content,
            "stop_reason": self._stop(answer),
            "stop_sequence": None,
            "usage": self._usage(answer, answer.completion_tokens),
        }

    def stream_frames(self, answer: Answer, request: web.Request, recorded: Recorded) -> list[bytes]:

        message: dict[str, Any] = {
            "id": f"msg_{len(self.requests)}fake",
            "type": "message",
            "role": "assistant",
            "model": answer.model or self.requested_model(recorded),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._usage(answer, 1),
        }
        frames = [self.sse({"type": "message_start", "message": message}, "message_start")]
        index = 0
        if answer.text:
            frames.append(
                self.sse(
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    "content_block_start",
                )
            )
            frames.append(self.sse({"type": "ping"}, "ping"))
            frames.extend(self._block_delta(0, {"type": "text_delta", "text": piece}) for piece in answer.pieces())
            frames.append(self.sse({"type": "content_block_stop", "index": 0}, "content_block_stop"))
            index = 1
        for i, (name, args) in enumerate(answer.tool_calls):
            block = {"type": "tool_use", "id": f"toolu_{i}fake", "name": name, "input": {}}
            frames.append(
                self.sse({"type": "content_block_start", "index": index, "content_block": block}, "content_block_start")
            )
            text = orjson.dumps(args).decode()
            pieces = ("", text[: len(text) // 2], text[len(text) // 2 :])  # the API's first fragment is empty
            frames.extend(self._block_delta(index, {"type": "input_json_delta", "partial_json": p}) for p in pieces)
            frames.append(self.sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
            index += 1
        frames.append(
            self.sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop(answer), "stop_sequence": None},
                    "usage": {"output_tokens": answer.completion_tokens},
                },
                "message_delta",
            )
        )
        frames.append(self.sse({"type": "message_stop"}, "message_stop"))
        return frames

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return self.sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")

    # -- errors ------------------------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None, code: str = "") -> dict[str, Any]:
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {
            "type": "error",
            "error": {"type": kind, "message": message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")},
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        }

    def error_headers(self, status: int, retry_after: float | str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if status == 429:
            reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat(timespec="seconds").replace("+00:00", "Z")
            headers = {
                "anthropic-ratelimit-requests-limit": "50",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": reset,
            }
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return headers

    def stream_error_frame(self, status: int, message: str | None) -> bytes:
        body = self.error_body(status, message)
        del body["request_id"]
        return self.sse(body, "error")

    def malformed_frame(self) -> bytes:
        return self.sse(
            b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "te', "content_block_delta"
        )


def _check_breakpoints(body: dict[str, Any]) -> None:
    """Prompt caching: `cache_control` on tools, system text blocks and message content blocks is
    {"type": "ephemeral"} (with an optional ttl of 5m or 1h), and a request has at most 4 of them."""
    system = body.get("system")
    blocks: list[tuple[str, Any]] = [(f"tools.{i}", t) for i, t in enumerate(body.get("tools") or [])]
    if isinstance(system, list):
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
                raise Rejected(400, f"system.{i}: Input should be a text block with non-empty text")
            blocks.append((f"system.{i}", block))
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            blocks += [(f"messages.{i}.content.{j}", b) for j, b in enumerate(content) if isinstance(b, dict)]
    marked = 0
    for where, block in blocks:
        if "cache_control" not in block:
            continue
        control = block["cache_control"]
        ttl = control.get("ttl", "5m") if isinstance(control, dict) else None
        if not isinstance(control, dict) or control.get("type") != "ephemeral" or ttl not in ("5m", "1h"):
            raise Rejected(400, f"{where}.cache_control: Input tag does not match the expected tag 'ephemeral'")
        marked += 1
    if marked > 4:
        raise Rejected(400, f"A maximum of 4 blocks with cache_control may be provided. Found {marked}.")
