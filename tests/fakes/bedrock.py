"""A fake of Amazon Bedrock Runtime's Converse and ConverseStream (POST /model/{modelId}/converse[-stream]).

Shapes from the service model botocore ships (botocore/data/bedrock-runtime/2023-09-30/service-2.json) and the API
reference: ConverseResponse (output.message.content blocks, stopReason, usage, metrics), the ConverseStream event
sequence messageStart, contentBlockStart (tool use only), contentBlockDelta, contentBlockStop, messageStop, metadata
as AWS event-stream messages with real CRCs (tests/fakes/eventstream.py), exception messages mid-stream
(throttlingException...), and errors as AWS's rest-json protocol sends them: the status, `x-amzn-errortype` and a
`{"message"}` body, with `x-amzn-RequestId` on every answer.

Every request must carry a valid SigV4 signature (service `bedrock`, the fake's region) by the fake's credentials,
checked by an implementation of its own (tests/fakes/sigv4.py); validation then rejects what Converse rejects:
unknown fields, conversations that do not start with a user turn or do not alternate, blank text, content blocks
with no or several members, images with an unknown format or bad base64, tool use outside assistant turns, tool
results that answer no tool use of the previous turn, tool blocks without toolConfig, out-of-range inference
parameters, and a toolChoice naming no tool.

Embeddings go through InvokeModel (POST /model/{modelId}/invoke) with each family's body, as AWS documents them:
Amazon Titan Text Embeddings (`{"inputText", "dimensions", "normalize", "embeddingTypes"}`, v2's dimensions 256, 512
or 1024, v1 taking inputText alone; answer `{"embedding", "inputTextTokenCount", "embeddingsByType"}`) and Cohere
Embed (`{"texts", "input_type", "truncate", "embedding_types"}` with at most 96 texts of at most 2,048 characters,
v4's `output_dimension`; answer `{"id", "embeddings", "response_type", "texts"}`, embeddings by type when
`embedding_types` was sent). Vectors are `fake_vector(text)`, of EMBEDDING_DIMENSIONS values unless a length was
asked for; a model id of another family is refused as Bedrock refuses a body it does not expect.

Beyond the shared control API: `fragment(size)` writes the next stream's frames in pieces of `size` bytes, each
sent on its own, so frames arrive split across reads.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
from typing import Any, ClassVar
from urllib.parse import unquote

import orjson
from aiohttp import web

from tests.fakes import eventstream, sigv4
from tests.fakes.server import EMBEDDING_DIMENSIONS, Answer, FakeProvider, Recorded, Rejected, fake_vector

TOP_LEVEL = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "additionalModelResponseFieldPaths",
        "requestMetadata",
        "performanceConfig",
        "serviceTier",
        "outputConfig",
    }
)
INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
BLOCKS = frozenset({"text", "image", "document", "video", "toolUse", "toolResult", "guardContent", "cachePoint"})
IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_.:-]{1,64}$")
# HTTP status -> the exception type Bedrock answers it with (the service model's httpStatusCode of each error).
EXCEPTIONS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
DEFAULT_MESSAGES = {
    400: "Malformed input request, please reformat your input and try again.",
    401: "The security token included in the request is invalid.",
    403: "You don't have access to the model with the specified model ID.",
    404: "Model not found.",
    408: "Model has timed out in processing the request. Try your request again.",
    424: "Received a server error from the model. Try your request again.",
    429: "Too many requests, please wait before trying again.",
    500: "The system encountered an unexpected error during processing. Try your request again.",
    503: "Bedrock is unable to process your request.",
}
TITAN_V2_FIELDS = frozenset({"inputText", "dimensions", "normalize", "embeddingTypes"})
TITAN_V2_DIMENSIONS = frozenset({256, 512, 1024})
COHERE_FIELDS = frozenset({"texts", "images", "input_type", "truncate", "embedding_types"})
COHERE_V4_FIELDS = COHERE_FIELDS | {"inputs", "output_dimension", "max_tokens"}
COHERE_INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering", "image"})
COHERE_V4_DIMENSIONS = frozenset({256, 512, 1024, 1536})
MAX_COHERE_TEXTS = 96
MAX_COHERE_CHARS = 2048
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
_request_ids = itertools.count(1)


class FakeBedrock(FakeProvider):
    kind = "bedrock"
    provider_type = "bedrock"
    default_model = "anthropic.claude-3-5-haiku-20241022-v1:0"
    stream_content_type: ClassVar[str] = "application/vnd.amazon.eventstream"

    def __init__(
        self,
        *,
        access_key: str = "AKIAFAKEBEDROCK00001",
        secret_key: str = "fAkE/SecretKey+0123456789abcdefghijklmnop",
        session_token: str | None = None,
        region: str = "us-east-1",
        models: set[str] | None = None,
    ) -> None:
        super().__init__(api_key=None, models=models)
        self.access_key = access_key
        self.secret_key = secret_key
        self.session_token = session_token
        self.region = region
        self.credentials: dict[str, tuple[str, str | None]] = {access_key: (secret_key, session_token)}
        """Access key -> (secret key, session token) of every identity the fake accepts."""
        self.piece_size: int | None = None
        self.raw_paths: list[str] = []
        """Each request's path as it came on the wire, percent-encoding included."""

    def environment(self) -> dict[str, str | None]:
        """The fake's credentials in the variables of AWS's chain, and nothing else of the machine's AWS set-up."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_SESSION_TOKEN": self.session_token,
            "AWS_CONFIG_FILE": "/nonexistent/aws/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws/credentials",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PROFILE": None,
            "AWS_REGION": None,
            "AWS_DEFAULT_REGION": None,
            "AWS_ROLE_ARN": None,
            "AWS_WEB_IDENTITY_TOKEN_FILE": None,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": None,
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
        }

    def provider_config(self, name: str | None = None, **overrides: Any) -> Any:
        return super().provider_config(name, **{"region": self.region, **overrides})

    def add_routes(self, app: web.Application) -> None:
        # The model id may hold an encoded "/" (ARNs): match anything up to the operation.
        app.router.add_post("/model/{model_id:.+}/converse", self.handle)
        app.router.add_post("/model/{model_id:.+}/converse-stream", self.handle)
        app.router.add_post("/model/{model_id:.+}/invoke", self.handle)

    def fragment(self, size: int) -> None:
        """The next streams' frames go out in pieces of `size` bytes, each written and flushed on its own."""
        self.piece_size = size

    # -- validation --------------------------------------------------------------------------------------------------

    def validate(self, request: web.Request, recorded: Recorded) -> None:
        raw_path, _, raw_query = request.raw_path.partition("?")
        self.raw_paths.append(raw_path)
        rejection = sigv4.verify(
            method=request.method,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(request.headers.items()),
            body=recorded.raw,
            secrets=self.credentials,
            region=self.region,
            service="bedrock",
        )
        if rejection is not None:
            raise Rejected(403, rejection.message, code=rejection.kind)
        if _is_invoke(recorded):
            self._check_embeddings(self.requested_model(recorded), recorded.body)
            return
        body = recorded.body
        for key in body:
            if key not in TOP_LEVEL:
                raise Rejected(400, f"Unknown field: {key}", code="ValidationException")
        model = self.requested_model(recorded)
        if self.models is not None and model not in self.models:
            raise Rejected(400, "The provided model identifier is invalid.", code="ValidationException")
        self._check_system(body.get("system"))
        self._check_inference(body.get("inferenceConfig"))
        tools = self._check_tool_config(body.get("toolConfig"))
        has_tool_blocks = self._check_messages(body.get("messages"))
        if has_tool_blocks and tools is None:
            raise Rejected(
                400,
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
                code="ValidationException",
            )

    def _check_system(self, system: Any) -> None:
        if system is None:
            return
        if not isinstance(system, list):
            raise Rejected(400, "system: expected a list of SystemContentBlock", code="ValidationException")
        for i, block in enumerate(system):
            if not isinstance(block, dict) or len(block) != 1:
                raise Rejected(400, f"system.{i}: exactly one member must be set", code="ValidationException")
            if "text" in block and not (isinstance(block["text"], str) and block["text"].strip()):
                raise Rejected(400, f"system.{i}.text: must not be blank", code="ValidationException")

    def _check_inference(self, config: Any) -> None:
        if config is None:
            return
        for key, value in config.items():
            if key not in INFERENCE:
                raise Rejected(400, f"inferenceConfig: unknown field {key}", code="ValidationException")
            if key == "maxTokens" and not (isinstance(value, int) and value >= 1):
                raise Rejected(400, "inferenceConfig.maxTokens: must be at least 1", code="ValidationException")
            if key in ("temperature", "topP") and not (isinstance(value, int | float) and 0 <= value <= 1):
                raise Rejected(400, f"inferenceConfig.{key}: must be between 0 and 1", code="ValidationException")
            if key == "stopSequences" and not all(isinstance(s, str) and s for s in value):
                raise Rejected(400, "inferenceConfig.stopSequences: must not be empty", code="ValidationException")

    def _check_tool_config(self, config: Any) -> set[str] | None:
        if config is None:
            return None
        tools = config.get("tools")
        if not isinstance(tools, list) or not tools:
            raise Rejected(400, "toolConfig.tools: at least one tool is required", code="ValidationException")
        names: set[str] = set()
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) and len(tool) == 1 else None
            if not isinstance(spec, dict):
                raise Rejected(400, f"toolConfig.tools.{i}: exactly one member must be set", code="ValidationException")
            name = spec.get("name")
            if not isinstance(name, str) or not TOOL_NAME.match(name):
                raise Rejected(
                    400,
                    f"toolConfig.tools.{i}.toolSpec.name: must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                    code="ValidationException",
                )
            if "description" in spec and not spec["description"]:
                raise Rejected(400, f"toolConfig.tools.{i}.toolSpec.description: blank", code="ValidationException")
            schema = (spec.get("inputSchema") or {}).get("json")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise Rejected(
                    400,
                    f"The value at toolConfig.tools.{i}.toolSpec.inputSchema.json.type must be one of the following: "
                    "object.",
                    code="ValidationException",
                )
            names.add(name)
        choice = config.get("toolChoice")
        if choice is not None:
            if not isinstance(choice, dict) or len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool"):
                raise Rejected(400, "toolConfig.toolChoice: exactly one member must be set", code="ValidationException")
            if "tool" in choice and choice["tool"].get("name") not in names:
                raise Rejected(400, "toolConfig.toolChoice.tool.name: no such tool", code="ValidationException")
        return names

    def _check_messages(self, messages: Any) -> bool:
        """Returns whether any toolUse or toolResult block was sent."""
        if not isinstance(messages, list) or not messages or messages[0].get("role") != "user":
            raise Rejected(
                400,
                "A conversation must start with a user message. Try again with a conversation that starts with a "
                "user message.",
                code="ValidationException",
            )
        previous_role = ""
        previous_uses: set[str] = set()
        tool_blocks = False
        for i, message in enumerate(messages):
            role = message.get("role")
            if role not in ("user", "assistant"):
                raise Rejected(400, f"messages.{i}.role: must be user or assistant", code="ValidationException")
            if role == previous_role:
                raise Rejected(
                    400,
                    "A conversation must alternate between user and assistant roles. Make sure the conversation "
                    "alternates between user and assistant roles and try again.",
                    code="ValidationException",
                )
            content = message.get("content")
            if not isinstance(content, list) or not content:
                raise Rejected(400, f"messages.{i}.content: must not be empty", code="ValidationException")
            uses: set[str] = set()
            for j, block in enumerate(content):
                where = f"messages.{i}.content.{j}"
                if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCKS:
                    raise Rejected(400, f"{where}: exactly one member must be set", code="ValidationException")
                kind, value = next(iter(block.items()))
                if kind == "text" and not (isinstance(value, str) and value.strip()):
                    raise Rejected(
                        400,
                        f"The text field in the ContentBlock object at {where} is blank. Add text to the text field, "
                        "and try again.",
                        code="ValidationException",
                    )
                if kind == "image":
                    self._check_image(value, where)
                if kind == "toolUse":
                    tool_blocks = True
                    if role != "assistant":
                        raise Rejected(
                            400, f"{where}: toolUse is only allowed in assistant turns", code="ValidationException"
                        )
                    if not TOOL_USE_ID.match(str(value.get("toolUseId"))) or not isinstance(value.get("input"), dict):
                        raise Rejected(400, f"{where}.toolUse: invalid", code="ValidationException")
                    uses.add(value["toolUseId"])
                if kind == "toolResult":
                    tool_blocks = True
                    if role != "user" or value.get("toolUseId") not in previous_uses:
                        raise Rejected(
                            400,
                            f"{where}: The toolResult blocks at {where} must answer a toolUse block of the previous "
                            "turn.",
                            code="ValidationException",
                        )
                    if not isinstance(value.get("content"), list):
                        raise Rejected(400, f"{where}.toolResult.content: required", code="ValidationException")
            previous_role, previous_uses = role, uses
        return tool_blocks

    def _check_image(self, image: Any, where: str) -> None:
        if not isinstance(image, dict) or image.get("format") not in IMAGE_FORMATS:
            raise Rejected(
                400,
                f"{where}.image.format: must be one of the following: png, jpeg, gif, webp",
                code="ValidationException",
            )
        source = image.get("source")
        if not isinstance(source, dict) or len(source) != 1:
            raise Rejected(400, f"{where}.image.source: exactly one member must be set", code="ValidationException")
        if "bytes" in source:
            try:
                data = base64.b64decode(source["bytes"], validate=True)
            except ValueError:
                data = b""
            if not data:
                raise Rejected(400, f"{where}.image.source.bytes: invalid base64", code="ValidationException")
        elif not str((source.get("s3Location") or {}).get("uri", "")).startswith("s3://"):
            raise Rejected(400, f"{where}.image.source: bytes or an s3:// location", code="ValidationException")

    def _check_embeddings(self, model: str, body: dict[str, Any]) -> None:
        # Bedrock relays a model's own validation as a ValidationException: "Malformed input request: ...".
        def malformed(detail: str) -> Rejected:
            return Rejected(
                400,
                f"Malformed input request: {detail}, please reformat your input and try again.",
                code="ValidationException",
            )

        if self.models is not None and model not in self.models:
            raise Rejected(400, "The provided model identifier is invalid.", code="ValidationException")
        if "titan-embed-text" in model:
            allowed = TITAN_V2_FIELDS if "-v2" in model else frozenset({"inputText"})
            for key in body:
                if key not in allowed:
                    raise malformed(f"#: extraneous key [{key}] is not permitted")
            if not isinstance(body.get("inputText"), str) or not body["inputText"]:
                raise malformed("#: required key [inputText] not found")
            if "dimensions" in body and body["dimensions"] not in TITAN_V2_DIMENSIONS:
                raise malformed(f"#/dimensions: {body['dimensions']} is not a valid enum value")
        elif "cohere.embed-" in model:
            allowed = COHERE_V4_FIELDS if "embed-v4" in model else COHERE_FIELDS
            for key in body:
                if key not in allowed:
                    raise malformed(f"#: extraneous key [{key}] is not permitted")
            texts = body.get("texts")
            if not isinstance(texts, list) or len(texts) > MAX_COHERE_TEXTS:
                raise malformed(f"#/texts: expected an array of at most {MAX_COHERE_TEXTS} items")
            for text in texts:
                if not isinstance(text, str) or len(text) > MAX_COHERE_CHARS:
                    raise malformed(f"#/texts: expected strings of at most {MAX_COHERE_CHARS} characters")
            if body.get("input_type") not in COHERE_INPUT_TYPES:
                raise malformed("#: required key [input_type] not found")
            if "output_dimension" in body and body["output_dimension"] not in COHERE_V4_DIMENSIONS:
                raise malformed(f"#/output_dimension: {body['output_dimension']} is not a valid enum value")
        else:
            raise malformed("#: the model does not take this body")

    def requested_model(self, recorded: Recorded) -> str:
        path = recorded.path.rsplit("/", 1)[0]  # drop the operation
        return unquote(path.removeprefix("/model/"))

    # -- answers -----------------------------------------------------------------------------------------------------

    def is_stream(self, request: web.Request, recorded: Recorded) -> bool:
        return request.path.endswith("/converse-stream")

    def answer_headers(self) -> dict[str, str]:
        return {"x-amzn-RequestId": f"0b9f4d2c-{next(_request_ids):04d}-4c1e-9a3e-5d7f1b2a6c80"}

    def _usage(self, answer: Answer) -> dict[str, Any]:
        usage = {
            "inputTokens": answer.prompt_tokens - answer.cached_tokens - answer.cache_creation_tokens,
            "outputTokens": answer.completion_tokens,
            "totalTokens": answer.prompt_tokens + answer.completion_tokens,
        }
        if answer.cached_tokens or answer.cache_creation_tokens:
            usage["cacheReadInputTokens"] = answer.cached_tokens
            usage["cacheWriteInputTokens"] = answer.cache_creation_tokens
        return usage

    def _stop(self, answer: Answer) -> str:
        return answer.finish or ("tool_use" if answer.tool_calls else "end_turn")

    def embeddings_body(self, recorded: Recorded) -> dict[str, Any]:
        body = recorded.body
        if "inputText" in body:
            values = fake_vector(body["inputText"], body.get("dimensions", EMBEDDING_DIMENSIONS))
            tokens = len(body["inputText"].split())
            return {"embedding": values, "inputTextTokenCount": tokens, "embeddingsByType": {"float": values}}
        vectors = [fake_vector(text, body.get("output_dimension", EMBEDDING_DIMENSIONS)) for text in body["texts"]]
        answer: dict[str, Any] = {"id": f"3a6c1e2b-{next(_request_ids):04d}-fake", "texts": body["texts"]}
        if "embedding_types" in body:
            return {**answer, "embeddings": {"float": vectors}, "response_type": "embeddings_by_type"}
        return {**answer, "embeddings": vectors, "response_type": "embeddings_floats"}

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        if _is_invoke(recorded):
            return self.embeddings_body(recorded)
        content: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
        content.extend(
            {"toolUse": {"toolUseId": f"tooluse_{i}fakeQx7", "name": name, "input": args}}
            for i, (name, args) in enumerate(answer.tool_calls)
        )
        return {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self._stop(answer),
            "usage": self._usage(answer),
            "metrics": {"latencyMs": 412},
        }

    def stream_frames(self, answer: Answer, request: web.Request, recorded: Recorded) -> list[bytes]:
        event = eventstream.event
        frames = [event("messageStart", {"role": "assistant"})]
        index = 0
        if answer.text:
            frames.extend(
                event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
                for piece in answer.pieces()
            )
            frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            index = 1
        for i, (name, args) in enumerate(answer.tool_calls):
            start = {"toolUse": {"toolUseId": f"tooluse_{i}fakeQx7", "name": name}}
            frames.append(event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            text = orjson.dumps(args).decode()
            for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
                delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}
                frames.append(event("contentBlockDelta", delta))
            frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        frames.append(event("messageStop", {"stopReason": self._stop(answer)}))
        frames.append(event("metadata", {"usage": self._usage(answer), "metrics": {"latencyMs": 412}}))
        return frames

    async def _write(self, request: web.Request, response: web.StreamResponse, frame: bytes) -> bool:
        size = self.piece_size
        if size is None:
            return await super()._write(request, response, frame)
        for start in range(0, len(frame), size):
            if not await super()._write(request, response, frame[start : start + size]):
                return False
            await asyncio.sleep(0.002)  # each piece its own TCP segment and read
        return True

    # -- errors ------------------------------------------------------------------------------------------------------

    def error_body(self, status: int, message: str | None, code: str = "") -> dict[str, Any]:
        return {"message": message or DEFAULT_MESSAGES.get(status, f"HTTP {status}")}

    def error_headers(self, status: int, retry_after: float | str | None) -> dict[str, str]:
        headers = {**self.answer_headers(), **super().error_headers(status, retry_after)}
        kind = EXCEPTIONS.get(status)
        if kind is not None:
            headers["x-amzn-errortype"] = kind + ERROR_TYPE_SUFFIX
        return headers

    def _error(
        self, status: int, message: str | None, *, code: str = "", headers: dict[str, str] | None = None
    ) -> web.Response:
        # A rejection names its exception type (code); fault injection has it from the status (error_headers).
        headers = headers or self.error_headers(status, None)
        if code:
            headers["x-amzn-errortype"] = code + ERROR_TYPE_SUFFIX
        return super()._error(status, message, code=code, headers=headers)

    def stream_error_frame(self, status: int, message: str | None) -> bytes:
        kind = EXCEPTIONS.get(status, "InternalServerException")
        member = kind[0].lower() + kind[1:]
        if member == "modelErrorException":
            member = "modelStreamErrorException"  # the stream's own name for a model failure
        return eventstream.exception(member, message or DEFAULT_MESSAGES.get(status, f"HTTP {status}"))

    def malformed_frame(self) -> bytes:
        return eventstream.corrupt(
            eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
        )


def _is_invoke(recorded: Recorded) -> bool:
    return recorded.path.endswith("/invoke")
