"""OpenAI's JSON bodies into the gateway's domain requests (chat.ChatRequest, embeddings.EmbedRequest), checked as the
gRPC door checks protobuf (gateway/request_rules.py), every refusal naming the field in OpenAI's `param`. The HTTP door
reads its requests with it, and the Batches service the items it stores as such bodies (batches/bodies.py): it sits
below both.

Chat Completions fields the gateway models are translated; top-level parameters it does not model (penalties,
`logit_bias`, `logprobs`, `top_logprobs`, `parallel_tool_calls`, `service_tier`...) go to ChatRequest.passthrough,
sent as given to OpenAI-format providers and refused by routing for any other (never silently dropped). `n` above 1
is refused: the gateway serves one choice per call. Nested fields it does not model (a tool's `strict`, say) are
refused naming the field, since no provider-neutral form of them exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.chat import (
    CacheControl,
    CacheMode,
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    ResponseFormat,
    Tool,
    ToolCall,
)
from gateway.embeddings import EmbeddingEncoding, EmbedRequest
from gateway.errors import InvalidRequest
from gateway.learning.ratings import Given, Source
from gateway.request_rules import (
    cache_control,
    check_embed_inputs,
    check_max_tokens,
    check_metadata,
    check_stop,
    check_temperature,
    check_top_p,
    invalid,
)

MODELLED = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "user",
        "response_format",
        "tools",
        "tool_choice",
        "stream",
        "stream_options",
        "metadata",
        "n",
    }
)
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
"""OpenAI's roles as the gateway's: `developer` is OpenAI's newer name for the system prompt."""
_MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})
EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
CACHE_HEADER = "x-gateway-cache"
NAMESPACE_HEADER = "x-gateway-cache-namespace"
TIMEOUT_HEADER = "x-gateway-timeout-ms"
_CACHE_MODES = {mode.value: mode for mode in CacheMode}


def chat_request(body: Mapping[str, Any]) -> tuple[ChatRequest, bool]:
    """The domain request and whether the caller wants usage in the stream (`stream_options.include_usage`)."""
    request = ChatRequest(model=_model(body), messages=_messages(body.get("messages")))
    request.text_chars = sum(_chars(m) for m in request.messages)
    request.images = sum(1 for m in request.messages for p in m.parts if isinstance(p, ImagePart))
    if "max_tokens" in body and "max_completion_tokens" in body:
        raise invalid("set max_completion_tokens or max_tokens, not both", "max_tokens")
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            request.max_tokens = check_max_tokens(_int(body, name), name)
    if body.get("temperature") is not None:
        request.temperature = check_temperature(_number(body, "temperature"))
    if body.get("top_p") is not None:
        request.top_p = check_top_p(_number(body, "top_p"))
    stop = body.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else stop
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise invalid("stop must be a string or an array of strings", "stop")
        request.stop = check_stop(stops)
    if body.get("seed") is not None:
        request.seed = _int(body, "seed")
    request.user = _string(body, "user")
    if body.get("metadata") is not None:
        request.metadata = check_metadata(_string_map(body["metadata"], "metadata"))
    if body.get("tools") is not None:
        request.tools = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        request.tool_choice = _tool_choice(body["tool_choice"], request.tools)
    if body.get("response_format") is not None:
        request.response_format = _response_format(body["response_format"])
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid(f"n {n!r} is not supported: the gateway serves one choice per call (send n calls)", "n")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream must be true or false", "stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not stream:
            raise invalid("stream_options is only allowed when stream is true", "stream_options")
        if not isinstance(options, dict) or set(options) - {"include_usage"}:
            raise invalid("stream_options takes include_usage only", "stream_options")
        include_usage = bool(options.get("include_usage"))
    request.passthrough = {name: value for name, value in body.items() if name not in MODELLED}
    return request, include_usage


def embed_request(body: Mapping[str, Any]) -> EmbedRequest:
    unknown = sorted(set(body) - EMBEDDING_FIELDS)
    if unknown:
        raise invalid(f"unrecognized embeddings parameter {unknown[0]!r}", unknown[0])
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
        raise invalid("input must be a string or an array of strings (token arrays are not supported)", "input")
    check_embed_inputs(inputs, "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format must be float or base64", "encoding_format")
    request = EmbedRequest(
        model=_model(body),
        inputs=inputs,
        encoding=EmbeddingEncoding(encoding),
        user=_string(body, "user"),
        text_chars=sum(map(len, inputs)),
    )
    if body.get("dimensions") is not None:
        request.dimensions = check_max_tokens(_int(body, "dimensions"), "dimensions")
    return request


def cache_from_headers(headers: Mapping[str, str]) -> CacheControl | None:
    """`x-gateway-cache: off|read_write|read_only|write_only|default` and `x-gateway-cache-namespace`."""
    mode_text = headers.get(CACHE_HEADER)
    namespace = headers.get(NAMESPACE_HEADER, "")
    if mode_text is None and not namespace:
        return None
    mode = _CACHE_MODES.get((mode_text or "default").strip().lower())
    if mode is None:
        raise invalid(f"header {CACHE_HEADER} takes one of {', '.join(sorted(_CACHE_MODES))}", CACHE_HEADER)
    return cache_control(mode, 0, namespace.strip(), None, param=CACHE_HEADER)


def timeout_from_headers(headers: Mapping[str, str]) -> float | None:
    """`x-gateway-timeout-ms`: the call's deadline in milliseconds, as gRPC's `grpc-timeout` gives the gRPC door one
    (OpenAI's SDKs send only their read timeout, which bounds a pause, not the call). Seconds, or None."""
    text = headers.get(TIMEOUT_HEADER)
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise invalid(f"header {TIMEOUT_HEADER} takes a whole number of milliseconds, at least 1", TIMEOUT_HEADER)
    return int(text) / 1000


# --- parts ----------------------------------------------------------------------------------------------------------


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "model is required: name a model from GET /v1/models", reason="MODEL_REQUIRED", metadata={"param": "model"}
        )
    return model


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest(
            "messages is empty: send at least one message", reason="MESSAGES_REQUIRED", metadata={"param": "messages"}
        )
    return [_message(m, i) for i, m in enumerate(raw)]


def _message(raw: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise invalid(f"{where} must be an object", where)
    unknown = sorted(set(raw) - _MESSAGE_FIELDS)
    if unknown:
        raise invalid(f"{where}.{unknown[0]} is not supported by the gateway", f"{where}.{unknown[0]}")
    role = ROLES.get(raw.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidRequest(
            f"{where}.role {raw.get('role')!r} is not valid: use system, developer, user, assistant or tool",
            reason="BAD_ROLE",
            metadata={"param": f"{where}.role"},
        )
    content, parts = _content(raw.get("content"), where)
    refusal = raw.get("refusal")
    if isinstance(refusal, str) and refusal and not content:
        content = refusal  # an earlier refusal, sent back as the assistant's words
    tool_calls = tuple(_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(raw.get("tool_calls") or ()))
    if tool_calls and role != "assistant":
        raise invalid(f"{where}: only assistant messages carry tool_calls", f"{where}.tool_calls")
    tool_call_id = _string(raw, "tool_call_id", where)
    if role == "tool" and not tool_call_id:
        raise invalid(f"{where}: a tool message needs tool_call_id (the call it answers)", f"{where}.tool_call_id")
    if not (content or parts or tool_calls or role == "tool"):
        raise InvalidRequest(
            f"{where} is empty: set content", reason="EMPTY_MESSAGE", metadata={"param": f"{where}.content"}
        )
    return Message(role, content, parts, tool_calls, tool_call_id, _string(raw, "name", where))  # type: ignore[arg-type]


def _content(raw: Any, where: str) -> tuple[str, tuple[ContentPart, ...]]:
    if raw is None or isinstance(raw, str):
        return raw or "", ()
    if not isinstance(raw, list):
        raise invalid(f"{where}.content must be a string or an array of content parts", f"{where}.content")
    parts: list[ContentPart] = []
    for j, part in enumerate(raw):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else None
            if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:image/")):
                raise invalid(f"{at}.image_url.url must be an http(s) or data:image/ URL", f"{at}.image_url.url")
            detail = image.get("detail") or ""
            if detail not in ("", "auto", "low", "high"):
                raise invalid(f"{at}.image_url.detail must be auto, low or high", f"{at}.image_url.detail")
            parts.append(ImagePart(url=url, detail=detail))
        else:
            raise invalid(f"{at}.type {kind!r} is not supported: use text or image_url", f"{at}.type")
    return "", tuple(parts)


def _tool_call(raw: Any, where: str) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or raw.get("type", "function") != "function":
        raise invalid(f"{where} must be a function call", where)
    return ToolCall(
        _string(raw, "id", where), _string(function, "name", where), _string(function, "arguments", where) or "{}"
    )


def _tools(raw: Any) -> list[Tool]:
    if not isinstance(raw, list):
        raise invalid("tools must be an array", "tools")
    tools = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise invalid(f"{where} must be a function tool", where)
        unknown = sorted(set(function) - {"name", "description", "parameters"})
        if unknown:
            raise invalid(f"{where}.function.{unknown[0]} is not supported by the gateway", f"{where}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise invalid(f"{where}.function.name is required", f"{where}.function.name")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"{where}.function.parameters must be a JSON Schema object", f"{where}.function.parameters")
        tools.append(Tool(name, _string(function, "description", where), parameters))
    return tools


def _tool_choice(raw: Any, tools: list[Tool]) -> str:
    if isinstance(raw, str):
        if raw not in ("auto", "none", "required"):
            raise invalid("tool_choice must be auto, none, required or a function", "tool_choice")
        choice = raw
    else:
        name = (raw.get("function") or {}).get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or name not in {t.name for t in tools}:
            raise invalid("tool_choice names no function given in tools", "tool_choice")
        choice = name
    if choice != "none" and not tools:
        raise invalid("tool_choice is set but no tools are given", "tool_choice")
    return choice


def _response_format(raw: Any) -> ResponseFormat | None:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind != "json_schema":
        raise invalid("response_format.type must be text, json_object or json_schema", "response_format.type")
    spec = raw.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise invalid("response_format.json_schema.schema must be a JSON Schema object", "response_format.json_schema")
    unknown = sorted(set(spec) - {"name", "schema"})
    if unknown:
        param = f"response_format.json_schema.{unknown[0]}"
        raise invalid(f"{param} is not supported by the gateway", param)
    return ResponseFormat("json_schema", _string(spec, "name") or "response", spec["schema"])


def _chars(message: Message) -> int:
    return (
        len(message.content)
        + len(message.name)
        + len(message.tool_call_id)
        + sum(len(p) for p in message.parts if isinstance(p, str))
        + sum(len(c.name) + len(c.arguments_json) for c in message.tool_calls)
    )


def _string(body: Mapping[str, Any], name: str, where: str = "") -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        param = f"{where}.{name}" if where else name
        raise invalid(f"{param} must be a string", param)
    return value


def _string_map(value: Any, param: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{param} must be an object of strings", param)
    return value


def _int(body: Mapping[str, Any], name: str) -> int:
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"{name} must be an integer", name)
    return value


def _number(body: Mapping[str, Any], name: str) -> float:
    value = body[name]
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise invalid(f"{name} must be a number", name)
    return float(value)


def feedback_request(body: Mapping[str, Any]) -> tuple[str, list[Given], str, Source]:
    """POST /v1/feedback: the call's id (the x-request-id its answer carried), its ratings, a comment and the source.
    A body of the gateway's own, OpenAI having no such endpoint:
    {"request_id": "...", "ratings": [{"metric": "thumbs", "boolean": true}, {"metric": "stars", "score": 4},
    {"metric": "verdict", "label": "partly"}], "comment": "...", "source": "end_user"}."""
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise invalid("request_id is required: the x-request-id header of the call's answer", "request_id")
    ratings = body.get("ratings")
    if not isinstance(ratings, list):
        raise invalid("ratings must be a list of {metric, and one of boolean, score or label}", "ratings")
    given = [_rating(rating, f"ratings[{i}]") for i, rating in enumerate(ratings)]
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise invalid("comment must be a string", "comment")
    source = body.get("source", Source.CALLING_SERVICE.value)
    if source not in {s.value for s in Source}:
        raise invalid(f"source must be one of {', '.join(s.value for s in Source)}", "source")
    return request_id, given, comment, Source(source)


def _rating(rating: object, param: str) -> Given:
    if not isinstance(rating, dict) or not isinstance(rating.get("metric"), str):
        raise invalid("each rating is an object with a metric name", param)
    values = {name: rating[name] for name in ("boolean", "score", "label") if name in rating}
    if len(values) != 1:
        raise invalid("give exactly one of boolean, score or label", param)
    boolean, score, label = values.get("boolean"), values.get("score"), values.get("label")
    if (
        (boolean is not None and not isinstance(boolean, bool))
        or (score is not None and (isinstance(score, bool) or not isinstance(score, int | float)))
        or (label is not None and not isinstance(label, str))
    ):
        raise invalid("boolean is true or false, score a number, label a string", param)
    return Given(rating["metric"], boolean=boolean, score=None if score is None else float(score), label=label)
