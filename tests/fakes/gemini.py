"""A fake of the Gemini API: POST /v1beta/models/{model}:generateContent and :streamGenerateContent?alt=sse.

Shapes from the official reference (googleapis/python-genai): GenerateContentResponse with candidates, finishReason,
usageMetadata, modelVersion, responseId; streams as SSE events each holding a whole GenerateContentResponse, framed
with CRLF as Google's servers do; `{"error": {"code", "message", "status", "details"}}` errors with
google.rpc.RetryInfo on 429 and API_KEY_INVALID on a bad key (HTTP 400, as the real API answers). Validation rejects
unknown fields (camelCase only), roles other than user/model, parts with zero or several data fields, bad base64,
function calls outside model turns, and responseJsonSchema without responseMimeType application/json. Embeddings:
:embedContent ({"content", "outputDimensionality"?} -> {"embedding": {"values"}}) and :batchEmbedContents (up to 100
requests, each naming the URL's model -> {"embeddings": [{"values"}]}), vectors `fake_vector(text)`, no usage
reported (as the real API).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.server import EMBEDDING_DIMENSIONS, Answer, FakeProvider, Recorded, Rejected, fake_vector

TOP_LEVEL = frozenset(
    {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings", "cachedContent"}
)
GENERATION = frozenset(
    {
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "stopSequences",
        "seed",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "candidateCount",
        "presencePenalty",
        "frequencyPenalty",
        "thinkingConfig",
        "responseLogprobs",
        "logprobs",
    }
)
EMBED_FIELDS = frozenset({"model", "content", "taskType", "title", "outputDimensionality"})
MAX_BATCH_EMBEDDINGS = 100
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,63}$")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    403: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or "
    "other form of API consumer identity to call this API.",
    404: "models/gemini-unknown is not found for API version v1beta, or is not supported for generateContent.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}


class FakeGemini(FakeProvider):
    kind = "gemini"
    provider_type = "gemini"
    default_model = "gemini-2.0-flash"
    sse_line_end = b"\r\n"

    def __init__(
        self, *, api_key: str | None = "AIzaSyTest0123456789abcdefghijklmnopqrs", models: set[str] | None = None
    ) -> None:
        super().__init__(api_key=api_key, models=models)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", self.handle)

    def _target(self, request: web.Request) -> tuple[str, str]:
        model, _, method = request.match_info["target"].partition(":")
        return model, method

    # -- validation --------------------------------------------------------------------------------------------------

    def validate(self, request: web.Request, recorded: Recorded) -> None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise Rejected(403, DEFAULT_MESSAGES[403])
        if key != self.api_key:
            raise Rejected(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID")
        model, method = self._target(request)
        if method not in ("generateContent", "streamGenerateContent", "embedContent", "batchEmbedContents"):
            raise Rejected(404, f"Method {method} not found.")
        if self.models is not None and model not in self.models:
            raise Rejected(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their supported "
                "methods.",
            )
        body = recorded.body
        if method == "embedContent":
            self._check_embed(body, model, batched=False)
            return
        if method == "batchEmbedContents":
            requests = body.get("requests")
            if set(body) != {"requests"} or not isinstance(requests, list) or not requests:
                raise Rejected(400, "* BatchEmbedContentsRequest.requests: requests must not be empty")
            if len(requests) > MAX_BATCH_EMBEDDINGS:
                raise Rejected(400, f"* BatchEmbedContentsRequest.requests: at most {MAX_BATCH_EMBEDDINGS} requests")
            for item in requests:
                self._check_embed(item, model, batched=True)
            return
        for key_name in body:
            if key_name not in TOP_LEVEL:
                raise Rejected(400, f'Invalid JSON payload received. Unknown name "{key_name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise Rejected(400, "* GenerateContentRequest.contents: contents is not specified")
        for i, content in enumerate(contents):
            role = content.get("role")
            if role not in ("user", "model"):
                raise Rejected(400, "Please use a valid role: user, model.")
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                raise Rejected(400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
            for j, part in enumerate(parts):
                self._check_part(part, role, f"contents[{i}].parts[{j}]")
        system = body.get("systemInstruction")
        if system is not None:
            for j, part in enumerate(system.get("parts") or []):
                if set(part) != {"text"}:
                    raise Rejected(400, f"* GenerateContentRequest.system_instruction.parts[{j}]: only text parts")
        self._check_generation(body.get("generationConfig"))
        names = self._check_tools(body.get("tools"))
        config = (body.get("toolConfig") or {}).get("functionCallingConfig")
        if config is not None:
            if config.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
                raise Rejected(
                    400, f"Invalid value at 'tool_config.function_calling_config.mode' ({config.get('mode')})"
                )
            for name in config.get("allowedFunctionNames") or []:
                if name not in names:
                    raise Rejected(
                        400,
                        f"* GenerateContentRequest.tool_config.function_calling_config."
                        f"allowed_function_names: {name} is not a declared function",
                    )

    def _check_embed(self, item: Any, model: str, *, batched: bool) -> None:
        if not isinstance(item, dict):
            raise Rejected(400, "Invalid JSON payload received. Expected an object.")
        for key in item:
            if key not in EMBED_FIELDS:
                raise Rejected(400, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
        if batched and item.get("model") != f"models/{model}":
            raise Rejected(400, f"* BatchEmbedContentsRequest.model: unexpected model name format: {item.get('model')}")
        parts = (item.get("content") or {}).get("parts")
        if not isinstance(parts, list) or not parts or not all(isinstance(p.get("text"), str) for p in parts):
            raise Rejected(400, "* EmbedContentRequest.content: contents must not be empty")
        dimensions = item.get("outputDimensionality")
        if dimensions is not None and (not isinstance(dimensions, int) or dimensions < 1):
            raise Rejected(400, "* EmbedContentRequest.output_dimensionality: must be positive")

    def _embedding(self, item: dict[str, Any]) -> dict[str, Any]:
        text = "".join(part["text"] for part in item["content"]["parts"])
        return {"values": fake_vector(text, item.get("outputDimensionality") or EMBEDDING_DIMENSIONS)}

    def _check_part(self, part: Any, role: str, where: str) -> None:
        if not isinstance(part, dict):
            raise Rejected(400, f"Invalid JSON payload received. {where}: expected an object")
        for key in part:
            if key not in (*DATA_FIELDS, "thought", "thoughtSignature"):
                raise Rejected(
                    400, f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
                )
        present = [k for k in DATA_FIELDS if k in part]
        if len(present) != 1:
            raise Rejected(
                400,
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field",
            )
        kind = present[0]
        if kind == "text" and not isinstance(part["text"], str):
            raise Rejected(400, f"Invalid value at '{where}.text' (TYPE_STRING)")
        if kind == "inlineData":
            blob = part["inlineData"]
            if not blob.get("mimeType"):
                raise Rejected(400, f"* GenerateContentRequest.{where}.inline_data.mime_type: mime_type is required")
            try:
                base64.b64decode(blob.get("data", ""), validate=True)
            except ValueError:
                raise Rejected(
                    400, f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
                ) from None
        if kind == "fileData" and not part["fileData"].get("fileUri"):
            raise Rejected(400, f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required")
        if kind == "functionCall":
            if role != "model":
                raise Rejected(
                    400,
                    "Please ensure that function call turn comes immediately after a user turn or "
                    "after a function response turn.",
                )
            if not part["functionCall"].get("name"):
                raise Rejected(400, f"* GenerateContentRequest.{where}.function_call.name: Name cannot be empty.")
        if kind == "functionResponse":
            response = part["functionResponse"]
            if not response.get("name"):
                raise Rejected(400, f"* GenerateContentRequest.{where}.function_response.name: Name cannot be empty.")
            if not isinstance(response.get("response"), dict):
                raise Rejected(
                    400,
                    f"Invalid value at '{where}.function_response.response' (type.googleapis.com/"
                    "google.protobuf.Struct)",
                )

    def _check_generation(self, config: Any) -> None:
        if config is None:
            return
        for key in config:
            if key not in GENERATION:
                raise Rejected(
                    400,
                    f"Invalid JSON payload received. Unknown name \"{key}\" at 'generation_config': Cannot find field.",
                )
        if "responseJsonSchema" in config and "responseSchema" in config:
            raise Rejected(400, "responseJsonSchema and responseSchema cannot both be set")
        if ("responseJsonSchema" in config or "responseSchema" in config) and config.get(
            "responseMimeType"
        ) != "application/json":
            raise Rejected(
                400,
                "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must"
                " be application/json when a response schema is set",
            )
        if "temperature" in config and not 0 <= config["temperature"] <= 2:
            raise Rejected(400, "* GenerateContentRequest.generation_config.temperature: must be in [0.0, 2.0]")

    def _check_tools(self, tools: Any) -> set[str]:
        names: set[str] = set()
        for tool in tools or []:
            for declaration in tool.get("functionDeclarations") or []:
                name = declaration.get("name", "")
                if not FUNCTION_NAME.match(name):
                    raise Rejected(
                        400,
                        f"* GenerateContentRequest.tools[0].function_declarations: [FIELD_INVALID] "
                        f"Invalid function name {name!r}.",
                    )
                if "parameters" in declaration and "parametersJsonSchema" in declaration:
                    raise Rejected(400, "parameters and parametersJsonSchema cannot both be set")
                extra = set(declaration) - {
                    "name",
                    "description",
                    "parameters",
                    "parametersJsonSchema",
                    "response",
                    "responseJsonSchema",
                    "behavior",
                }
                if extra:
                    raise Rejected(400, f'Invalid JSON payload received. Unknown name "{sorted(extra)[0]}"')
                names.add(name)
        return names

    # -- answers -----------------------------------------------------------------------------------------------------

    def is_stream(self, request: web.Request, recorded: Recorded) -> bool:
        return self._target(request)[1] == "streamGenerateContent"

    def embeddings_body(self, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        if self._target(request)[1] == "embedContent":
            return {"embedding": self._embedding(recorded.body)}
        return {"embeddings": [self._embedding(item) for item in recorded.body["requests"]]}

    def _model(self, answer: Answer, request: web.Request) -> str:
        return answer.model or self._target(request)[0]

    def _usage(self, answer: Answer, *, final: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": answer.prompt_tokens}
        if final:
            usage["candidatesTokenCount"] = answer.completion_tokens
            usage["totalTokenCount"] = answer.prompt_tokens + answer.completion_tokens + answer.thoughts_tokens
            usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": answer.prompt_tokens}]
            if answer.cached_tokens:
                usage["cachedContentTokenCount"] = answer.cached_tokens
            if answer.thoughts_tokens:
                usage["thoughtsTokenCount"] = answer.thoughts_tokens
        else:
            usage["totalTokenCount"] = answer.prompt_tokens
        return usage

    def _calls(self, answer: Answer) -> list[dict[str, Any]]:
        return [{"functionCall": {"name": name, "args": args}} for name, args in answer.tool_calls]

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        if self._target(request)[1] in ("embedContent", "batchEmbedContents"):
            return self.embeddings_body(request, recorded)
        parts: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
        parts.extend(self._calls(answer))
        return {
            "candidates": [
                {"content": {"parts": parts, "role": "model"}, "finishReason": answer.finish or "STOP", "index": 0}
            ],
            "usageMetadata": self._usage(answer, final=True),
            "modelVersion": self._model(answer, request),
            "responseId": f"resp{len(self.requests)}fake",
        }

    def stream_frames(self, answer: Answer, request: web.Request, recorded: Recorded) -> list[bytes]:
        model = self._model(answer, request)
        response_id = f"resp{len(self.requests)}fake"
        pieces: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in answer.pieces()]
        if answer.tool_calls:
            pieces.append(self._calls(answer))
        if not pieces:
            pieces = [[{"text": ""}]]
        frames = []
        for i, parts in enumerate(pieces):
            last = i == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = answer.finish or "STOP"
            frames.append(
                self.sse(
                    {
                        "candidates": [candidate],
                        "usageMetadata": self._usage(answer, final=last),
                        "modelVersion": model,
                        "responseId": response_id,
                    }
                )
            )
        return frames

    # -- errors ------------------------------------------------------------------------------------------------------

    def error_body(
        self, status: int, message: str | None, code: str = "", retry_delay: str | None = None
    ) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": status,
            "message": message or DEFAULT_MESSAGES.get(status, f"HTTP {status}"),
            "status": STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if code == "API_KEY_INVALID":
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        if status == 429:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay or "27s"},
            ]
        return {"error": error}

    def error_headers(self, status: int, retry_after: float | str | None) -> dict[str, str]:
        return {}  # Gemini says when to retry in the body (RetryInfo), not in a header

    async def _respond(self, request: web.Request, recorded: Recorded) -> web.StreamResponse:
        # Retry-After for Gemini goes into the body's RetryInfo: rewrite the queued fault's body before the base runs.
        if self.faults and self.faults[0].kind == "status" and self.faults[0].retry_after is not None:
            fault = self.faults[0]
            if fault.body is None and fault.status == 429:
                delay = (
                    f"{fault.retry_after}s" if isinstance(fault.retry_after, int | float) else str(fault.retry_after)
                )
                fault.body = orjson.dumps(self.error_body(429, fault.message, retry_delay=delay))
                fault.headers = {"content-type": "application/json", **fault.headers}
        return await super()._respond(request, recorded)

    def stream_error_frame(self, status: int, message: str | None) -> bytes:
        return self.sse(self.error_body(status, message))

    def malformed_frame(self) -> bytes:
        return self.sse(b'{"candidates": [{"content": {"parts": [{"text": "unterminat')
