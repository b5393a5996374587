"""Protobuf <-> domain conversion, with request validation that names the field to fix."""

from __future__ import annotations

from typing import Any

import orjson
from llmgateway.v1 import gateway_pb2 as pb

from gateway.cache.entries import CacheInfo
from gateway.chat import (
    ROLES,
    CacheControl,
    CacheMode,
    ChatDelta,
    ChatRequest,
    ChatResult,
    ContentPart,
    ImagePart,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
    Usage,
)
from gateway.embeddings import Embedding, EmbeddingEncoding, EmbedRequest
from gateway.errors import InvalidRequest
from gateway.request_rules import (
    cache_control,
    check_embed_inputs,
    check_max_tokens,
    check_metadata,
    check_stop,
    check_temperature,
    check_top_p,
)
from gateway.routing.executor import Attempt
from gateway.routing.router import RoutePlan

IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_RESPONSE_FORMATS = {
    pb.ResponseFormat.TYPE_TEXT: "text",
    pb.ResponseFormat.TYPE_JSON_OBJECT: "json_object",
    pb.ResponseFormat.TYPE_JSON_SCHEMA: "json_schema",
}


def chat_request_from_proto(msg: pb.ChatRequest) -> ChatRequest:
    if not msg.model:
        raise InvalidRequest("model is required: name a model from ListModels", reason="MODEL_REQUIRED")
    if not msg.messages:
        raise InvalidRequest("messages is empty: send at least one message", reason="MESSAGES_REQUIRED")
    messages = []
    chars = 0
    images = 0
    for i, m in enumerate(msg.messages):
        message = _message_from_proto(m, i)
        messages.append(message)
        chars += len(message.content) + len(message.name) + len(message.tool_call_id)
        if message.parts:
            for part in message.parts:
                if isinstance(part, str):
                    chars += len(part)
                else:
                    images += 1
        for call in message.tool_calls:
            chars += len(call.name) + len(call.arguments_json)
    request = ChatRequest(
        model=msg.model,
        messages=messages,
        user=msg.user,
        tool_choice=msg.tool_choice,
        batch=msg.priority == pb.PRIORITY_BATCH,
        text_chars=chars,
        images=images,
    )
    if msg.HasField("max_tokens"):
        request.max_tokens = check_max_tokens(msg.max_tokens)
    if msg.HasField("temperature"):
        request.temperature = check_temperature(msg.temperature)
    if msg.HasField("top_p"):
        request.top_p = check_top_p(msg.top_p)
    if msg.HasField("seed"):
        request.seed = msg.seed
    if msg.stop:
        request.stop = check_stop(list(msg.stop))
    if msg.metadata:
        request.metadata = check_metadata(msg.metadata)
    if msg.tools:
        request.tools = [_tool(t, i) for i, t in enumerate(msg.tools)]
    if msg.tool_choice and not msg.tools and msg.tool_choice != "none":
        raise InvalidRequest("tool_choice is set but no tools are given")
    if msg.HasField("response_format") and msg.response_format.type:
        request.response_format = _response_format(msg.response_format)
    if msg.HasField("cache"):
        request.cache = _cache_control(msg.cache)
    if msg.HasField("defer_up_to_s"):
        request.defer_up_to_s = check_defer(msg.defer_up_to_s)
    return request


MAX_DEFER_S = 86_400.0


def check_defer(seconds: float) -> float:
    if not 0 < seconds <= MAX_DEFER_S:
        raise InvalidRequest(
            f"defer_up_to_s must be more than 0 and at most {MAX_DEFER_S:g} (a day); leave it unset to send at once",
            reason="BAD_DEFER",
            metadata={"param": "defer_up_to_s"},
        )
    return seconds


def embed_request_from_proto(msg: pb.EmbedRequest) -> EmbedRequest:
    if not msg.model:
        raise InvalidRequest("model is required: name an embedding model from ListModels", reason="MODEL_REQUIRED")
    inputs = list(msg.inputs)
    check_embed_inputs(inputs)
    request = EmbedRequest(
        model=msg.model,
        inputs=inputs,
        encoding=EmbeddingEncoding.BASE64 if msg.encoding == pb.EMBEDDING_ENCODING_BASE64 else EmbeddingEncoding.FLOAT,
        user=msg.user,
        batch=msg.priority == pb.PRIORITY_BATCH,
        text_chars=sum(map(len, inputs)),
    )
    if msg.HasField("dimensions"):
        if msg.dimensions == 0:
            raise InvalidRequest("dimensions must be at least 1 (leave it unset for the model's length)")
        request.dimensions = msg.dimensions
    if msg.metadata:
        request.metadata = check_metadata(msg.metadata)
    if msg.HasField("cache"):
        request.cache = _cache_control(msg.cache)
    return request


def embeddings_to_proto(embedded: list[Embedding], encoding: EmbeddingEncoding) -> list[pb.Embedding]:
    if encoding is EmbeddingEncoding.BASE64:
        return [pb.Embedding(index=i, packed=e.vector.tobytes(), cached=e.cached) for i, e in enumerate(embedded)]
    return [pb.Embedding(index=i, values=e.vector, cached=e.cached) for i, e in enumerate(embedded)]


_CACHE_MODES = {
    pb.CACHE_MODE_UNSPECIFIED: CacheMode.DEFAULT,
    pb.CACHE_MODE_OFF: CacheMode.OFF,
    pb.CACHE_MODE_READ_WRITE: CacheMode.READ_WRITE,
    pb.CACHE_MODE_READ_ONLY: CacheMode.READ_ONLY,
    pb.CACHE_MODE_WRITE_ONLY: CacheMode.WRITE_ONLY,
}


def _cache_control(msg: pb.CacheControl) -> CacheControl:
    mode = _CACHE_MODES.get(msg.mode)
    if mode is None:
        raise InvalidRequest(f"cache.mode {msg.mode} is unknown: use one of the CacheMode values")
    semantic = msg.allow_semantic if msg.HasField("allow_semantic") else None
    return cache_control(mode, msg.ttl_seconds, msg.namespace, semantic)


def cache_info_to_proto(info: CacheInfo) -> pb.CacheInfo:
    return pb.CacheInfo(
        hit=info.hit, kind=info.kind, similarity=info.similarity, entry_id=info.entry_id, age_seconds=info.age_s
    )


def _message_from_proto(msg: pb.Message, index: int) -> Message:
    role = msg.role
    if role not in ROLES:
        raise InvalidRequest(
            f"messages[{index}].role {role!r} is not valid: use system, user, assistant or tool",
            reason="BAD_ROLE",
        )
    if not msg.parts and not msg.tool_calls and role != "tool":
        # The common case, a plain text turn, in a few attribute reads.
        content = msg.content
        if not content:
            raise InvalidRequest(f"messages[{index}] is empty: set content or parts", reason="EMPTY_MESSAGE")
        return Message(role, content, name=msg.name, untrusted=msg.untrusted)  # type: ignore[arg-type]
    parts: tuple[ContentPart, ...] = tuple(_part(p, index, j) for j, p in enumerate(msg.parts)) if msg.parts else ()
    tool_calls = tuple(ToolCall(c.id, c.name, c.arguments_json) for c in msg.tool_calls) if msg.tool_calls else ()
    if tool_calls and msg.role != "assistant":
        raise InvalidRequest(f"messages[{index}]: only assistant messages carry tool_calls")
    if msg.role == "tool" and not msg.tool_call_id:
        raise InvalidRequest(f"messages[{index}]: a tool message needs tool_call_id (the call it answers)")
    if not (msg.content or parts or tool_calls):
        raise InvalidRequest(f"messages[{index}] is empty: set content or parts", reason="EMPTY_MESSAGE")
    return Message(
        msg.role,  # type: ignore[arg-type]
        msg.content,
        parts,
        tool_calls,
        msg.tool_call_id,
        msg.name,
        untrusted=msg.untrusted,
    )


def _part(part: pb.ContentPart, index: int, j: int) -> ContentPart:
    kind = part.WhichOneof("part")
    if kind == "text":
        return part.text
    if kind == "image_url":
        url = part.image_url.url
        if not url.startswith(("https://", "http://", "data:image/")):
            raise InvalidRequest(f"messages[{index}].parts[{j}].image_url must be an http(s) or data:image/ URL")
        return ImagePart(url=url, detail=part.image_url.detail)
    if kind == "image_data":
        data = part.image_data
        if data.mime_type not in IMAGE_MIME_TYPES:
            raise InvalidRequest(
                f"messages[{index}].parts[{j}].image_data.mime_type {data.mime_type!r} is not supported: "
                f"use one of {sorted(IMAGE_MIME_TYPES)}"
            )
        if not data.data:
            raise InvalidRequest(f"messages[{index}].parts[{j}].image_data.data is empty")
        return ImagePart(data=data.data, mime_type=data.mime_type)
    raise InvalidRequest(f"messages[{index}].parts[{j}] is empty: set text, image_url or image_data")


def _tool(tool: pb.Tool, index: int) -> Tool:
    if not tool.name:
        raise InvalidRequest(f"tools[{index}].name is required")
    parameters = _json_object(tool.parameters_json, f"tools[{index}].parameters_json") if tool.parameters_json else None
    return Tool(tool.name, tool.description, parameters)


def _response_format(fmt: pb.ResponseFormat) -> ResponseFormat:
    kind = _RESPONSE_FORMATS.get(fmt.type)
    if kind is None:
        raise InvalidRequest(f"response_format.type {fmt.type} is unknown")
    if kind != "json_schema":
        return ResponseFormat(kind)  # type: ignore[arg-type]
    if not fmt.json_schema:
        raise InvalidRequest("response_format.json_schema is required for TYPE_JSON_SCHEMA")
    schema = _json_object(fmt.json_schema, "response_format.json_schema")
    return ResponseFormat("json_schema", fmt.schema_name or "response", schema)


def _json_object(text: str, field: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InvalidRequest(f"{field} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object")
    return value


def messages_from_proto(messages: Any) -> list[Message]:
    return [_message_from_proto(m, i) for i, m in enumerate(messages)]


# The fill_* functions write into a message's own sub-message (`response.usage`, ...) rather than building one for the
# constructor to copy in: ~0.5 µs less a sub-message with upb, on every call's answer.


def fill_usage(into: pb.Usage, usage: Usage, cost_usd: float) -> None:
    into.SetInParent()  # present even when every count is 0, as a caller reading usage expects
    into.prompt_tokens = usage.prompt_tokens
    into.completion_tokens = usage.completion_tokens
    into.total_tokens = usage.prompt_tokens + usage.completion_tokens
    into.cost_usd = cost_usd
    into.cached_prompt_tokens = usage.cached_prompt_tokens


def fill_message(into: pb.Message, result: ChatResult) -> None:
    into.role = "assistant"
    into.content = result.text
    if result.tool_calls:
        into.tool_calls.extend(
            pb.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json) for c in result.tool_calls
        )


def fill_route(into: pb.RouteInfo, plan: RoutePlan, attempts: list[Attempt]) -> None:
    into.SetInParent()  # present for a call served from the cache too, with no route or attempts
    into.route = plan.route
    into.strategy = plan.strategy
    into.reason = plan.reason
    add = into.attempts.add
    for a in attempts:
        add(
            model=a.target.model.name,
            provider=a.target.provider.name,
            outcome=a.outcome,
            code=a.code,
            reason=a.reason,
            latency_ms=a.latency_ms,
            retry=a.retry,
            hedged=a.hedged,
        )
    learned = plan.learned
    if learned is not None:
        into.learned.CopyFrom(
            pb.LearnedRoute(
                query_type=learned.query_type,
                explored=learned.explored,
                cold_start=learned.cold,
                model=learned.model,
                arms=[
                    pb.ArmEstimate(
                        model=arm.model,
                        objective=arm.objective,
                        quality=arm.quality,
                        quality_sd=arm.sd,
                        cost_usd=arm.cost_usd,
                        latency_s=arm.latency_s,
                        feedback=arm.feedback,
                        probability=learned.probabilities.get(arm.model, 0.0),
                    )
                    for arm in learned.arms
                ],
            )
        )


def guardrails_to_proto(actions: list[dict[str, Any]]) -> list[pb.GuardrailAction]:
    return [
        pb.GuardrailAction(
            type=a["type"],
            kind=a["kind"],
            action=a["action"],
            count=a["count"],
            score=a.get("score", 0.0),
            model=a.get("model", ""),
        )
        for a in actions
    ]


def delta_tool_calls_to_proto(delta: ChatDelta) -> list[pb.ToolCallDelta]:
    return [
        pb.ToolCallDelta(index=t.index, id=t.id, name=t.name, arguments_delta=t.arguments_delta)
        for t in delta.tool_calls
    ]
