"""A fake of OpenAI's Chat Completions and Embeddings APIs, with the Azure OpenAI and "OpenAI-compatible server"
variants.

Payload shapes follow the official reference (openai/openai-openapi): chat.completion and chat.completion.chunk
objects, `stream_options.include_usage` giving a last chunk with empty choices and the usage, `data: [DONE]`, and
`{"error": {"message", "type", "param", "code"}}` error bodies. Validation rejects what the real API rejects: unknown
top-level arguments, `max_tokens` on o-series models, `stream_options` without `stream`, a tool message that answers
no earlier tool call, `json_object` without the word JSON in the messages, and so on. Embeddings (POST /embeddings):
`input` as a string or up to 2048 non-empty strings, `encoding_format` float or base64 (packed little-endian
float32), `dimensions` only for text-embedding-3 models; vectors are `fake_vector(text)`, usage one token a word.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from typing import Any, ClassVar, Literal

import orjson
from aiohttp import web

from tests.fakes.server import EMBEDDING_DIMENSIONS, Answer, FakeProvider, Recorded, Rejected, fake_vector

Flavour = Literal["openai", "azure", "compatible"]

TOP_LEVEL = frozenset(
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
        "tools",
        "tool_choice",
        "response_format",
        "stream",
        "stream_options",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "metadata",
        "store",
        "reasoning_effort",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)
EMBEDDING_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
MAX_EMBEDDING_INPUTS = 2048
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}
DEFAULT_MESSAGES = {
    400: "Invalid request.",
    401: "Incorrect API key provided: sk-te****7890. You can find your API key at https://platform.openai.com/account/api-keys.",
    403: "Country, region, or territory not supported",
    404: "The model `gpt-unknown` does not exist or you do not have access to it.",
    408: "Request timed out.",
    429: "Rate limit reached for gpt-4o-mini in organization org-abc on requests per min (RPM): Limit 3, Used 3, "
    "Requested 1. Please try again in 20s.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class FakeOpenAI(FakeProvider):
    kind = "openai"
    provider_type: ClassVar[str] = "openai"
    default_model = "gpt-4o-mini"

    def __init__(
        self,
        *,
        flavour: Flavour = "openai",
        api_key: str | None = "sk-test-0123456789abcdef",
        models: set[str] | None = None,
        api_version: str = "2024-10-21",
        deployments: set[str] | None = None,
        reject_stream_options: bool = False,
        stream_usage: bool = True,
        send_done: bool = True,
    ) -> None:
        super().__init__(api_key=api_key, models=models)
        self.flavour: Flavour = flavour
        self.kind = {"openai": "openai", "azure": "azure_openai", "compatible": "openai_compatible"}[flavour]
        self.api_version = api_version
        self.deployments = deployments if deployments is not None else {self.default_model}
        self.reject_stream_options = reject_stream_options
        """Behave like a server that 400s on stream_options (older vLLM-style servers)."""
        self.stream_usage = stream_usage
        """False: never send usage in streams, even when asked (e.g. older Ollama)."""
        self.send_done = send_done

    @property
    def url(self) -> str:
        return self.origin if self.flavour == "azure" else f"{self.origin}/v1"

    def provider_config(self, name: str | None = None, **overrides: Any) -> Any:
        fields: dict[str, Any] = {"type": self.kind}
        if self.flavour == "azure":
            fields["api_version"] = self.api_version
        fields.update(overrides)
        return super().provider_config(name, **fields)

    def add_routes(self, app: web.Application) -> None:
        if self.flavour == "azure":
            app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.handle)
            app.router.add_post("/openai/deployments/{deployment}/embeddings", self.handle)
        else:
            app.router.add_post("/v1/chat/completions", self.handle)
            app.router.add_post("/v1/embeddings", self.handle)

    # -- validation --------------------------------------------------------------------------------------------------

    def validate(self, request: web.Request, recorded: Recorded) -> None:
        self._check_auth(request)
        self._check_deployment(request)
        if _is_embeddings(recorded):
            self._check_embeddings(recorded.body)
            return
        body = recorded.body
        for key in body:
            if key not in TOP_LEVEL:
                raise Rejected(400, f"Unrecognized request argument supplied: {key}")
        model = body.get("model")
        if self.flavour != "azure":
            if not isinstance(model, str) or not model:
                raise Rejected(400, "you must provide a model parameter")
            if self.models is not None and model not in self.models:
                raise Rejected(404, f"The model `{model}` does not exist or you do not have access to it.")
        self._check_chat(body, model)

    def _check_deployment(self, request: web.Request) -> None:
        if self.flavour == "azure":
            if request.query.get("api-version") != self.api_version:
                raise Rejected(404, "Resource not found", code="404")
            deployment = request.match_info["deployment"]
            if deployment not in self.deployments:
                raise Rejected(
                    404,
                    "The API deployment for this resource does not exist. If you created the deployment within the "
                    "last 5 minutes, please wait a moment and try again.",
                    code="DeploymentNotFound",
                )

    def _check_embeddings(self, body: dict[str, Any]) -> None:
        for key in body:
            if key not in EMBEDDING_FIELDS:
                raise Rejected(400, f"Unrecognized request argument supplied: {key}")
        model = body.get("model")
        if self.flavour != "azure" and (not isinstance(model, str) or not model):
            raise Rejected(400, "you must provide a model parameter")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise Rejected(400, f"'$.input' is invalid: expected 1 to {MAX_EMBEDDING_INPUTS} inputs.")
        for text in texts:
            if not isinstance(text, str) or not text:
                raise Rejected(400, "'$.input' is invalid. Please check the API reference.")
        if body.get("encoding_format", "float") not in ("float", "base64"):
            raise Rejected(400, "Invalid value for 'encoding_format': expected 'float' or 'base64'.")
        if "dimensions" in body:
            if self.flavour != "azure" and not str(model).startswith("text-embedding-3"):
                raise Rejected(400, "This model does not support specifying dimensions.")
            if not isinstance(body["dimensions"], int) or body["dimensions"] < 1:
                raise Rejected(400, "Invalid 'dimensions': integer below minimum value.")

    def _check_chat(self, body: dict[str, Any], model: Any) -> None:
        reasoning = isinstance(model, str) and re.match(r"^o\d", model) is not None
        if "max_tokens" in body and "max_completion_tokens" in body:
            raise Rejected(400, "max_tokens and max_completion_tokens cannot both be set")
        if reasoning and "max_tokens" in body:
            raise Rejected(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                code="unsupported_parameter",
            )
        for key in ("max_tokens", "max_completion_tokens"):
            if key in body and (not isinstance(body[key], int) or body[key] < 1):
                raise Rejected(400, f"Invalid '{key}': integer below minimum value.")
        if "stream_options" in body:
            if self.reject_stream_options:
                raise Rejected(400, "Unrecognized request argument supplied: stream_options")
            if not body.get("stream"):
                raise Rejected(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
        if "temperature" in body and not 0 <= body["temperature"] <= 2:
            raise Rejected(400, "Invalid 'temperature': decimal above maximum value.")
        if "top_p" in body and not 0 <= body["top_p"] <= 1:
            raise Rejected(400, "Invalid 'top_p': decimal above maximum value.")
        stop = body.get("stop")
        if stop is not None and not (isinstance(stop, str) or (isinstance(stop, list) and len(stop) <= 4)):
            raise Rejected(400, "Invalid 'stop': array too long. Expected an array with maximum length 4.")
        self._check_messages(body.get("messages"))
        tools = self._check_tools(body.get("tools"))
        self._check_tool_choice(body.get("tool_choice"), tools)
        self._check_response_format(body.get("response_format"), body["messages"])

    def _check_auth(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        if self.flavour == "azure":
            if request.headers.get("api-key") != self.api_key:
                raise Rejected(
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                    "valid key for an active subscription and use a correct regional API endpoint for your resource.",
                    code="401",
                )
            return
        header = request.headers.get("authorization", "")
        if not header:
            raise Rejected(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if header != f"Bearer {self.api_key}":
            shown = header.removeprefix("Bearer ")
            raise Rejected(
                401,
                f"Incorrect API key provided: {shown[:5]}****{shown[-4:]}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _check_messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            raise Rejected(400, "[] is too short - 'messages'")
        pending_calls: set[str] = set()
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ROLES:
                raise Rejected(
                    400,
                    f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                    f"'function', 'tool', and 'developer'. (messages[{i}].role)",
                )
            content = message.get("content")
            if role == "tool":
                if message.get("tool_call_id") not in pending_calls:
                    raise Rejected(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                    )
                if not isinstance(content, str | list):
                    raise Rejected(400, f"Invalid type for 'messages[{i}].content'.")
                continue
            if role == "assistant":
                calls = message.get("tool_calls") or []
                for call in calls:
                    if call.get("type") != "function" or not isinstance(call.get("function", {}).get("arguments"), str):
                        raise Rejected(400, f"Invalid 'messages[{i}].tool_calls'.")
                pending_calls = {call["id"] for call in calls}
                if content is None and not calls:
                    raise Rejected(400, f"Invalid value for 'content': expected a string, got null. (messages[{i}])")
                continue
            if isinstance(content, str):
                continue
            if not isinstance(content, list) or not content:
                raise Rejected(400, f"Invalid type for 'messages[{i}].content'.")
            for j, part in enumerate(content):
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    continue
                if kind == "image_url" and role == "user":
                    self._check_image(part.get("image_url"), f"messages[{i}].content[{j}]")
                    continue
                raise Rejected(400, f"Invalid content part type '{kind}' in messages[{i}].content[{j}].")

    def _check_image(self, image: Any, where: str) -> None:
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str):
            raise Rejected(400, f"Missing required parameter: '{where}.image_url.url'.")
        if url.startswith("data:"):
            match = re.match(r"^data:(image/[a-z+.-]+);base64,(.*)$", url, re.DOTALL)
            if match is None:
                raise Rejected(
                    400,
                    "Invalid image URL: expected a base64-encoded data URL with an image MIME type.",
                    code="invalid_image_url",
                )
            try:
                base64.b64decode(match.group(2), validate=True)
            except ValueError:
                raise Rejected(400, "You uploaded an unsupported image.", code="invalid_image_format") from None
        elif not url.startswith(("http://", "https://")):
            raise Rejected(400, "Invalid image URL.", code="invalid_image_url")
        if image.get("detail") not in (None, "auto", "low", "high"):
            raise Rejected(400, f"Invalid value for '{where}.image_url.detail'.")

    def _check_tools(self, tools: Any) -> set[str]:
        if tools is None:
            return set()
        names: set[str] = set()
        if not isinstance(tools, list):
            raise Rejected(400, "Invalid type for 'tools': expected an array.")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise Rejected(400, f"Missing required parameter: 'tools[{i}].function'.")
            name = function.get("name")
            if not isinstance(name, str) or not FUNCTION_NAME.match(name):
                raise Rejected(400, f"Invalid 'tools[{i}].function.name': string does not match pattern.")
            params = function.get("parameters")
            if params is not None and (not isinstance(params, dict) or params.get("type") != "object"):
                raise Rejected(
                    400, f"Invalid schema for function '{name}': schema must be a JSON Schema of 'type: \"object\"'."
                )
            names.add(name)
        return names

    def _check_tool_choice(self, choice: Any, tools: set[str]) -> None:
        if choice is None:
            return
        if choice != "none" and not tools:
            raise Rejected(
                400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
            )
        if isinstance(choice, str):
            if choice not in ("auto", "none", "required"):
                raise Rejected(400, f"Invalid value for 'tool_choice': '{choice}'.")
            return
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        if choice.get("type") != "function" or name not in tools:
            raise Rejected(
                400,
                f"Invalid value for 'tool_choice': no function named '{name}' was specified in the 'tools' parameter.",
            )

    def _check_response_format(self, fmt: Any, messages: list[dict[str, Any]]) -> None:
        if fmt is None:
            return
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_object":
            if "json" not in str(messages).lower():
                raise Rejected(
                    400,
                    "'messages' must contain the word 'json' in some form, to use 'response_format' "
                    "of type 'json_object'.",
                )
        elif kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not re.match(r"^[a-zA-Z0-9_-]{1,64}$", str(spec.get("name", ""))):
                raise Rejected(400, "Missing required parameter: 'response_format.json_schema.name'.")
            if not isinstance(spec.get("schema"), dict):
                raise Rejected(400, "Invalid 'response_format.json_schema.schema'.")
        elif kind != "text":
            raise Rejected(
                400, f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'."
            )

    # -- answers -----------------------------------------------------------------------------------------------------

    def is_stream(self, request: web.Request, recorded: Recorded) -> bool:
        return not _is_embeddings(recorded) and bool(recorded.body.get("stream"))

    def _model(self, answer: Answer, recorded: Recorded) -> str:
        if answer.model:
            return answer.model
        if self.flavour == "azure":
            return "gpt-4o-mini-2024-07-18"
        return self.requested_model(recorded)

    def _usage(self, answer: Answer) -> dict[str, Any]:
        return {
            "prompt_tokens": answer.prompt_tokens,
            "completion_tokens": answer.completion_tokens,
            "total_tokens": answer.prompt_tokens + answer.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": answer.thoughts_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _finish(self, answer: Answer) -> str:
        return answer.finish or ("tool_calls" if answer.tool_calls else "stop")

    def embeddings_body(self, recorded: Recorded) -> dict[str, Any]:
        body = recorded.body
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        dimensions = body.get("dimensions", EMBEDDING_DIMENSIONS)
        packed = body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            values = fake_vector(text, dimensions)
            embedding: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode() if packed else values
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(text.split()) for text in texts)
        model = "text-embedding-3-small" if self.flavour == "azure" else body["model"]
        return {
            "object": "list",
            "data": data[::-1],  # out of order on purpose: clients must sort by index
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        if recorded is not None and _is_embeddings(recorded):
            return self.embeddings_body(recorded)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": answer.text if answer.text or not answer.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if answer.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{i}abc", "type": "function", "function": {"name": n, "arguments": _json(args)}}
                for i, (n, args) in enumerate(answer.tool_calls)
            ]
        body: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self._model(answer, recorded),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": _logprobs(answer.text)
                    if recorded is not None and recorded.body.get("logprobs")
                    else None,
                    "finish_reason": self._finish(answer),
                }
            ],
            "usage": self._usage(answer),
            "system_fingerprint": "fp_fake",
        }
        if self.flavour != "azure":
            body["service_tier"] = "default"
        else:
            body["prompt_filter_results"] = [{"prompt_index": 0, "content_filter_results": {}}]
        return body

    def stream_frames(self, answer: Answer, request: web.Request, recorded: Recorded) -> list[bytes]:
        body = recorded.body
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and self.stream_usage
        base: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self._model(answer, recorded),
            "system_fingerprint": "fp_fake",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                payload["usage"] = None
            return self.sse(payload)

        frames: list[bytes] = []
        if self.flavour == "azure":  # Azure's first chunk: prompt filter results, no choices, no model
            frames.append(
                self.sse(
                    {
                        "id": "",
                        "object": "",
                        "created": 0,
                        "model": "",
                        "choices": [],
                        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
                    }
                )
            )
        frames.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        frames.extend(chunk({"content": piece}) for piece in answer.pieces())
        for i, (name, args) in enumerate(answer.tool_calls):
            call = {"index": i, "id": f"call_{i}abc", "type": "function", "function": {"name": name, "arguments": ""}}
            frames.append(chunk({"tool_calls": [call]}))
            text = _json(args)
            halves = (text[: len(text) // 2], text[len(text) // 2 :])
            frames.extend(chunk({"tool_calls": [{"index": i, "function": {"arguments": h}}]}) for h in halves)
        frames.append(chunk({}, self._finish(answer)))
        if include_usage:
            frames.append(self.sse({**base, "choices": [], "usage": self._usage(answer)}))
        if self.send_done:
            frames.append(self.sse(b"[DONE]"))
        return frames

    # -- errors ------------------------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None, code: str = "") -> dict[str, Any]:
        kind, default_code = ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        text = message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")
        if self.flavour == "azure":
            return {"error": {"code": code or str(status), "message": text}}
        return {"error": {"message": text, "type": kind, "param": None, "code": code or default_code}}

    def error_headers(self, status: int, retry_after: float | str | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if status == 429:
            headers = {
                "x-ratelimit-limit-requests": "3",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": "20s",
                "x-ratelimit-limit-tokens": "40000",
                "x-ratelimit-remaining-tokens": "39000",
                "x-ratelimit-reset-tokens": "1.5s",
            }
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
            if self.flavour == "azure" and isinstance(retry_after, int | float):
                headers["retry-after-ms"] = str(int(retry_after * 1000))
        return headers

    def stream_error_frame(self, status: int, message: str | None) -> bytes:
        return self.sse(self.error_body(status, message))


def _logprobs(text: str) -> dict[str, Any]:
    """A choice's `logprobs` as OpenAI returns them when asked: one entry a word."""
    return {
        "content": [
            {"token": word, "logprob": -0.5, "bytes": list(word.encode()), "top_logprobs": []}
            for word in text.split(" ")
        ],
        "refusal": None,
    }


def _is_embeddings(recorded: Recorded) -> bool:
    return recorded.path.endswith("/embeddings")


def _json(value: Any) -> str:

    return orjson.dumps(value).decode()
