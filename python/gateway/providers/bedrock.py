"""AWS Bedrock Runtime: Converse and ConverseStream (POST {endpoint}/model/{modelId}/converse, .../converse-stream).

Reference: the service model botocore ships (botocore/data/bedrock-runtime/2023-09-30/service-2.json) and
docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html and ..._ConverseStream.html.
Mapping decisions:
- Authentication: SigV4 (signing name `bedrock`, the provider's region) over the exact bytes sent, with credentials
  from the standard AWS chain (aws_auth.py); there is no API key. The endpoint is the region's public one unless
  base_url names another (a VPC or FIPS endpoint).
- The model id goes in the path percent-encoded (the `:` of versioned ids, the `:` and `/` of ARNs) and is sent byte
  for byte, so foundation model ids, cross-region inference profiles (`us.anthropic.claude-3-5-sonnet-20241022-v2:0`)
  and ARNs (application inference profiles, provisioned throughput, imported models) all work.
- System messages become `system` text blocks; tool results become `toolResult` blocks in a user turn; consecutive
  turns of one role are merged (Converse wants user and assistant to alternate).
- Images: inline bytes and data: URLs as `image.source.bytes`, s3:// URLs as `s3Location`. Converse cannot fetch
  http(s) URLs: such a request fails before sending as one this target cannot serve (FAILED_PRECONDITION, so a route
  tries its other targets).
- tool_choice: required -> `any`, a tool's name -> `tool`, auto -> left to the default. Converse has no "none": the
  tools are then not sent, unless the conversation holds tool turns (Converse requires toolConfig with those, and the
  model may then still call a tool).
- `max_tokens`, temperature, top_p and stop go in inferenceConfig; maxTokens is sent only when the request sets it.
  response_format becomes an instruction in the system prompt (outputConfig's JSON schema is served by few models).
  seed and user are not sent.
- Stop reasons: end_turn and stop_sequence -> stop; max_tokens and model_context_window_exceeded -> length; tool_use ->
  tool_calls; guardrail_intervened and content_filtered -> content_filter; malformed_model_output and
  malformed_tool_use -> stop.
- Usage: prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens (inputTokens leaves the cache
  out); cached_prompt_tokens = cacheReadInputTokens. A stream reports usage in its last event (`metadata`, after
  messageStop), which is when the final delta goes out. The answer's id is the x-amzn-RequestId header.
- Embeddings (Titan Text Embeddings and Cohere Embed) go through InvokeModel, with the bodies of
  bedrock_embeddings.py; Titan takes one text a request (the pipeline sends a batch's texts a few at a time), Cohere
  96.
- Errors map by exception type (the x-amzn-errortype header, else the body's `__type` or `code`), HTTP answers and
  exception frames mid-stream alike: see `error_for_exception`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from botocore.credentials import ReadOnlyCredentials
from yarl import URL

from gateway.chat import ChatDelta, ChatRequest, ChatResult, ImagePart, Message, ToolCall, ToolCallDelta, Usage
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.embeddings import EmbedRequest, EmbedResult
from gateway.errors import ErrorKind, ProviderError
from gateway.providers.aws_auth import AwsCredentials, CredentialsUnavailable, SigV4Signer
from gateway.providers.base import UpstreamCall
from gateway.providers.bedrock_embeddings import (
    COHERE_BATCH,
    EmbeddingFamily,
    batch_limit,
    embedding_family,
    parse_answer,
    request_body,
)
from gateway.providers.eventstream import EXCEPTION, EventStreamParser
from gateway.providers.http import (
    HttpProvider,
    SSEEvent,
    StreamDecoder,
    StreamParser,
    UpstreamRequest,
    disconnected,
    error_for_status,
    parse_retry_after,
    redact_secrets,
)
from gateway.providers.json_mode import json_instruction
from gateway.providers.media import guess_mime_type, inline_image

log = logging.getLogger("gateway.providers")

SIGNING_NAME = "bedrock"
EVENT_STREAM = "application/vnd.amazon.eventstream"

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}

# Exception type -> the HTTP status the service model gives it, whose row of http.error_for_status applies (an
# exception frame mid-stream carries no status of its own).
EXCEPTION_STATUS = {
    "ValidationException": 400,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
# The model failed or is still loading (imported models start cold): the same call may succeed in a moment.
MODEL_FAILURES = frozenset({"ModelErrorException", "ModelStreamErrorException", "ModelNotReadyException"})
# Who we are or what we may do: fixing it is an operator's work, so the target is skipped, not retried.
AUTH_FAILURES = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
        "ExpiredTokenException",
    }
)
# ValidationExceptions that blame the configured model id, not the caller's request.
MODEL_ID_PROBLEMS = ("model identifier is invalid", "on-demand throughput isn")


class UnsupportedInput(ValueError):
    """The request holds something Converse cannot take."""


def _image_format(mime_type: str) -> str:
    subtype = mime_type.rpartition("/")[2].lower()
    return "jpeg" if subtype == "jpg" else subtype


def _image_block(part: ImagePart) -> dict[str, Any]:
    inline = inline_image(part)
    if inline is not None:
        return {"image": {"format": _image_format(inline.mime_type), "source": {"bytes": inline.base64_data}}}
    if part.url.startswith("s3://"):
        return {"image": {"format": _image_format(guess_mime_type(part)), "source": {"s3Location": {"uri": part.url}}}}
    raise UnsupportedInput("Converse takes images as bytes or s3:// URLs, not http(s) URLs: send the image inline")


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": message.tool_call_id, "content": [{"text": message.text()}]}}]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"text": message.content})
    for part in message.parts:
        if isinstance(part, str):
            if part:
                blocks.append({"text": part})
        else:
            blocks.append(_image_block(part))
    for call in message.tool_calls:
        try:
            arguments = orjson.loads(call.arguments_json) if call.arguments_json else {}
        except orjson.JSONDecodeError:
            arguments = {}
        if not isinstance(arguments, dict):
            arguments = {}  # Converse takes the input of a tool call as a JSON object only
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}})
    return blocks


def converse_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The `system` blocks and the alternating `messages` of a Converse request. Raises UnsupportedInput."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            text = message.text()
            if text:
                system.append({"text": text})
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _content_blocks(message)
        if not blocks:
            continue  # Converse rejects a message without content
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tool_config(request: ChatRequest, turns: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not request.tools:
        return None
    choice = request.tool_choice
    if choice == "none" and not any("toolUse" in b or "toolResult" in b for t in turns for b in t["content"]):
        return None
    tools = [
        {
            "toolSpec": {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "inputSchema": {"json": tool.parameters or {"type": "object", "properties": {}}},
            }
        }
        for tool in request.tools
    ]
    config: dict[str, Any] = {"tools": tools}
    if choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice not in ("", "auto", "none"):
        config["toolChoice"] = {"tool": {"name": choice}}
    return config


def converse_usage(raw: Mapping[str, Any] | None) -> Usage | None:
    if not raw:
        return None
    cache_read = int(raw.get("cacheReadInputTokens") or 0)
    cache_write = int(raw.get("cacheWriteInputTokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("inputTokens") or 0) + cache_read + cache_write,
        completion_tokens=int(raw.get("outputTokens") or 0),
        cached_prompt_tokens=cache_read,
    )


def _invoked_model(payload: Mapping[str, Any]) -> str:
    """The model a prompt router chose, when the model id was a router's."""
    router = (payload.get("trace") or {}).get("promptRouter") or {}
    return str(router.get("invokedModelId") or "")


def exception_type(raw: str) -> str:
    """`ThrottlingException:http://internal.amazon.com/coral/...` (header), `com.amazon...#ThrottlingException`
    (JSON protocols) or `throttlingException` (an exception frame's member name) -> `ThrottlingException`."""
    name = raw.partition(":")[0].rpartition("#")[2].strip()
    return name[:1].upper() + name[1:]


class ConverseStreamDecoder(StreamDecoder):
    """messageStart -> (contentBlockStart? contentBlockDelta* contentBlockStop)* -> messageStop -> metadata, with an
    exception frame possibly anywhere. Text blocks have no contentBlockStart; tool-use blocks open with one naming
    the call, then stream its arguments as JSON fragments. The final delta goes out at `metadata`, which carries the
    usage; a stream that ends after messageStop without it still ends well, without usage."""

    def __init__(self, provider: BedrockProvider, model_id: str) -> None:
        self.provider = provider
        self.model = model_id
        self.finish_reason = ""
        self.stopped = False
        self.tool_index: dict[int, int] = {}
        """Content block index -> index among tool calls (what ToolCallDelta.index means)."""

    def on_event(self, event: SSEEvent) -> list[ChatDelta]:
        name = event.event
        if name == "contentBlockDelta":
            data = orjson.loads(event.data)
            delta = data["delta"]
            text = delta.get("text")
            if text is not None:
                return [ChatDelta(text=text, upstream_model=self.model)] if text else []
            tool = delta.get("toolUse")
            if tool is None:
                return []  # reasoningContent, citation...: not part of the answer text
            index = self.tool_index.get(int(data["contentBlockIndex"]))
            if index is None:
                raise ValueError("a toolUse delta outside a toolUse block")
            fragment = tool.get("input") or ""
            tool_delta = ToolCallDelta(index=index, arguments_delta=fragment)
            return [ChatDelta(tool_calls=[tool_delta], upstream_model=self.model)] if fragment else []
        if name == "contentBlockStart":
            data = orjson.loads(event.data)
            tool = data["start"].get("toolUse")
            if tool is None:
                return []
            index = len(self.tool_index)
            self.tool_index[int(data["contentBlockIndex"])] = index
            tool_delta = ToolCallDelta(index=index, id=tool["toolUseId"], name=tool["name"])
            return [ChatDelta(tool_calls=[tool_delta], upstream_model=self.model)]
        if name == "messageStop":
            self.finish_reason = STOP_REASONS.get(orjson.loads(event.data)["stopReason"], "stop")
            self.stopped = True
            return []
        if name == "metadata":
            data = orjson.loads(event.data)
            self.done = True
            self.model = _invoked_model(data) or self.model
            usage = converse_usage(data.get("usage"))
            return [ChatDelta(finish_reason=self.finish_reason or "stop", usage=usage, upstream_model=self.model)]
        if name == EXCEPTION:
            raise self.provider.error_from_body(orjson.loads(event.data), status=None)
        return []  # messageStart, contentBlockStop, and event types added later

    def finish(self) -> list[ChatDelta]:
        if self.done:
            return []
        if self.stopped:
            self.done = True
            return [ChatDelta(finish_reason=self.finish_reason, upstream_model=self.model)]
        raise disconnected(self.provider.name, "mid-stream (the stream ended before messageStop)")


class BedrockProvider(HttpProvider):
    request_id_header = "x-amzn-requestid"
    embed_batch = COHERE_BATCH

    def __init__(self, config: ProviderConfig) -> None:
        credentials = AwsCredentials(config.profile)
        region = config.region or credentials.region()
        if region != config.region:
            # The region found in the environment or the profile is the one residency checks, as if configured.
            config = config.model_copy(update={"region": region})
        super().__init__(config)
        self._credentials = credentials
        self._signer = SigV4Signer(service=SIGNING_NAME, region=region) if region else None
        if region is None:
            log.warning("provider %r (bedrock) has no region: its calls fail until one is configured", config.name)

    # -- requests ----------------------------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> ChatResult:
        await self._ready()
        return await super().chat(request, model, call)

    async def embed(self, request: EmbedRequest, model: ModelConfig, call: UpstreamCall) -> EmbedResult:
        self._family(model)  # before credentials: a model id of no known family fails the same everywhere
        await self._ready()
        return await super().embed(request, model, call)

    async def stream(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> AsyncIterator[ChatDelta]:
        await self._ready()
        async for delta in self._stream(self.build_request(request, model, stream=True), request, model, call):
            yield delta

    async def _ready(self) -> None:
        """Credentials fresh before build_request signs with them (resolving or refreshing them off the loop)."""
        if self._signer is None:
            raise self._unservable(
                "has no AWS region: set `region` in its config, or AWS_REGION", "PROVIDER_AUTH_FAILED"
            )
        try:
            await self._credentials.current()
        except CredentialsUnavailable as err:
            raise ProviderError(
                f"provider {self.name!r} (bedrock) has no usable AWS credentials: {self.redact(str(err))}",
                provider=self.name,
                kind=ErrorKind.FAILED_PRECONDITION if err.lasting else ErrorKind.UNAVAILABLE,
                reason="PROVIDER_AUTH_FAILED" if err.lasting else "UPSTREAM_UNAVAILABLE",
                retryable=not err.lasting,
            ) from None

    def _unservable(self, why: str, reason: str) -> ProviderError:
        """This target cannot serve the call as configured or asked: not retried, but a route tries its others."""
        return ProviderError(
            f"provider {self.name!r} (bedrock) {why}",
            provider=self.name,
            kind=ErrorKind.FAILED_PRECONDITION,
            reason=reason,
            retryable=False,
        )

    def build_request(self, request: ChatRequest, model: ModelConfig, *, stream: bool) -> UpstreamRequest:
        try:
            system, messages = converse_messages(request.messages)
        except UnsupportedInput as err:
            raise self._unservable(f"cannot take this request: {err}", "UPSTREAM_REJECTED_REQUEST") from None
        instruction = json_instruction(request)
        if instruction:
            system.append({"text": instruction})
        body: dict[str, Any] = {"messages": messages}
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        if request.max_tokens is not None:
            inference["maxTokens"] = request.max_tokens
        if request.temperature is not None:
            inference["temperature"] = request.temperature
        if request.top_p is not None:
            inference["topP"] = request.top_p
        if request.stop:
            inference["stopSequences"] = list(request.stop)
        if inference:
            body["inferenceConfig"] = inference
        tools = _tool_config(request, messages)
        if tools is not None:
            body["toolConfig"] = tools
        if stream:
            return self._signed(model, "converse-stream", body, accept=EVENT_STREAM)
        return self._signed(model, "converse", body)

    def _signed(
        self, model: ModelConfig, operation: str, body: dict[str, Any], accept: str = "application/json"
    ) -> UpstreamRequest:
        """A request of `operation` on the model, signed over the bytes sent."""
        # encoded=True: yarl would turn %3A back into ":", and the signature covers the path as sent.
        url = URL(f"{self.config.url}/model/{quote(model.upstream, safe='')}/{operation}", encoded=True)
        headers = {"content-type": "application/json", "accept": accept}
        return UpstreamRequest(url=url, headers=headers, body=body, sign=partial(self._sign, str(url), dict(headers)))

    def _sign(self, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        credentials = self._credentials.latest
        # chat() and stream() check the region and load the credentials before they build a request.
        assert self._signer is not None
        assert credentials is not None
        return self._signer.sign(credentials, url, headers, body)

    # -- answers -----------------------------------------------------------------------------------------------------

    def parse_response(self, payload: Any, model: ModelConfig) -> ChatResult:
        texts: list[str] = []
        tool_calls: list[ToolCall] = []
        for block in payload["output"]["message"]["content"]:
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                tool = block["toolUse"]
                arguments = orjson.dumps(tool.get("input") or {}).decode()
                tool_calls.append(ToolCall(id=tool["toolUseId"], name=tool["name"], arguments_json=arguments))
        return ChatResult(
            upstream_id="",  # the x-amzn-RequestId header (request_id_header)
            upstream_model=_invoked_model(payload) or model.upstream,
            text="".join(texts),
            finish_reason=STOP_REASONS.get(payload["stopReason"], "stop"),
            usage=converse_usage(payload.get("usage")),
            tool_calls=tool_calls,
        )

    def stream_decoder(self, request: ChatRequest, model: ModelConfig) -> StreamDecoder:
        return ConverseStreamDecoder(self, model.upstream)

    def stream_parser(self) -> StreamParser:
        return EventStreamParser()

    # -- embeddings (bedrock_embeddings.py) --------------------------------------------------------------------------

    def _family(self, model: ModelConfig) -> EmbeddingFamily:
        family = embedding_family(model.upstream)
        if family is None:
            raise self._unservable(
                f"cannot tell which embedding API model {model.upstream!r} speaks: Bedrock embeddings are served for "
                "Amazon Titan Text Embeddings (amazon.titan-embed-text-*) and Cohere Embed (cohere.embed-*) model ids",
                "EMBEDDINGS_UNSUPPORTED",
            )
        return family

    def embed_batch_for(self, model: ModelConfig) -> int:
        family = embedding_family(model.upstream)
        return batch_limit(family) if family is not None else self.embed_batch

    def build_embed_request(self, request: EmbedRequest, model: ModelConfig) -> UpstreamRequest:
        return self._signed(model, "invoke", request_body(self._family(model), request))

    def parse_embed_response(self, payload: Any, model: ModelConfig) -> EmbedResult:
        return parse_answer(self._family(model), payload, model.upstream)

    # -- errors ------------------------------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        credentials: ReadOnlyCredentials | None = self._credentials.latest
        if credentials is not None:
            for secret in (credentials.secret_key, credentials.token, credentials.access_key):
                if secret:
                    text = text.replace(secret, "[redacted]")
        return redact_secrets(text)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ProviderError:
        try:
            payload = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            payload = {"message": body[:200].decode("utf-8", "replace")}
        if not isinstance(payload, dict):
            payload = {}
        kind = headers.get("x-amzn-errortype")
        if kind:
            payload = {**payload, "__type": kind}
        return self.error_from_body(payload, status=status, retry_after=parse_retry_after(headers))

    def error_from_body(
        self, payload: Mapping[str, Any], *, status: int | None, retry_after: float | None = None
    ) -> ProviderError:
        """An AWS error (an HTTP error body with its type, or an exception frame's) as a ProviderError."""
        kind = exception_type(str(payload.get("__type") or payload.get("code") or ""))
        message = str(payload.get("message") or payload.get("Message") or "")
        return self.error_for_exception(kind, message, status=status, retry_after=retry_after)

    def error_for_exception(
        self, kind: str, message: str, *, status: int | None, retry_after: float | None = None
    ) -> ProviderError:
        name = self.name
        said = self.redact(f"{kind}: {message}" if kind else message)
        if kind in AUTH_FAILURES or (not kind and status in (401, 403)):
            return ProviderError(
                f"provider {name!r} (bedrock) refused our AWS identity ({said}); check the credentials it finds "
                f"(environment, profile {self.config.profile or '(default)'}, web identity or instance role), their "
                f"IAM permission bedrock:InvokeModel, and model access in {self.config.region}",
                provider=name,
                http_status=status or 403,
                kind=ErrorKind.FAILED_PRECONDITION,
                reason="PROVIDER_AUTH_FAILED",
                retryable=False,
            )
        if kind == "ValidationException" and any(p in message for p in MODEL_ID_PROBLEMS):
            return ProviderError(
                f"provider {name!r} (bedrock) does not take the configured model id ({said}); check upstream_model "
                "(a model that needs an inference profile is called by the profile's id, e.g. us.<model id>)",
                provider=name,
                http_status=status or 400,
                kind=ErrorKind.FAILED_PRECONDITION,
                reason="UPSTREAM_MODEL_NOT_FOUND",
                retryable=False,
            )
        if kind in MODEL_FAILURES:
            return ProviderError(
                f"provider {name!r} (bedrock): the model failed ({said})",
                provider=name,
                http_status=status,
                reason="UPSTREAM_UNAVAILABLE",
                retry_after=retry_after,
            )
        if kind == "ServiceQuotaExceededException":
            # A quota of the account, not a rate: waiting seconds does not lift it, but another target may serve.
            return ProviderError(
                f"provider {name!r} (bedrock) is over an account quota ({said})",
                provider=name,
                http_status=status or 400,
                kind=ErrorKind.RESOURCE_EXHAUSTED,
                reason="UPSTREAM_RATE_LIMITED",
                retryable=False,
                retry_after=retry_after,
            )
        return error_for_status(
            EXCEPTION_STATUS.get(kind, status or 500), said, provider=self.config, retry_after=retry_after
        )
