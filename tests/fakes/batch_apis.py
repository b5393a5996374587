"""Fakes of the providers' batch APIs: OpenAI's and Azure OpenAI's Batch and Files APIs, Anthropic's Message Batches,
the Gemini API's batch mode (inline requests). Each speaks the shapes of the official references (see the adapters
in gateway/batches/adapters/), validates what the real API would refuse, and walks a batch through a scripted life.

Control API (every fake): `lifecycle` is the statuses a batch reports on successive polls, in the provider's own
words (the last one stays); `fail_items` maps an item's position in the batch to the HTTP status its answer gets (an
error instead of an answer); `unanswered` is the set of positions left without an answer when the batch ends (so
they come back expired or cancelled, as the provider's end says); `reverse` returns the results in the reverse of
the input order; `refuse_create` makes the next create answer that HTTP status; `slow_s` delays every upload and
create; `batches` holds every batch made, `created` counts them, `requests` records (method, path) of every request.
Answers say `answer to <custom_id>` with 10 prompt and 5 completion tokens.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import orjson
from aiohttp import web

from gateway.config.schema import ModelConfig, ProviderConfig

PROMPT_TOKENS = 10
COMPLETION_TOKENS = 5
_ids = itertools.count(1)


@dataclass
class FakeBatch:
    id: str
    items: list[tuple[str, dict[str, Any]]]
    """(custom_id, request body) in input order."""
    metadata: dict[str, Any] = field(default_factory=dict)
    polls: int = 0
    status: str = ""
    cancel_requested: bool = False
    created_at: float = field(default_factory=time.time)


class FakeBatchApi:
    kind: ClassVar[str]
    provider_type: ClassVar[str]
    default_model: ClassVar[str]
    lifecycle_default: ClassVar[list[str]]
    ended: ClassVar[frozenset[str]]

    def __init__(self, *, api_key: str = "sk-test-batches-0123456789") -> None:
        self.api_key = api_key
        self.lifecycle = list(self.lifecycle_default)
        self.fail_items: dict[int, int] = {}
        self.unanswered: set[int] = set()
        self.reverse = False
        self.refuse_create: int | None = None
        self.slow_s = 0.0
        """Seconds every upload and create takes before answering."""
        self.batches: dict[str, FakeBatch] = {}
        self.created = 0
        self.requests: list[tuple[str, str]] = []
        self.number = next(_ids)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life cycle --------------------------------------------------------------------------------------------------

    async def start(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        response: web.StreamResponse = await handler(request)
        return response

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def key_env(self) -> str:
        return f"FAKE_BATCH_{self.kind.upper()}_KEY_{self.number}"

    def provider_config(self, name: str | None = None, **overrides: Any) -> ProviderConfig:
        fields: dict[str, Any] = {
            "name": name or f"fake-batch-{self.kind}-{self.number}",
            "type": self.provider_type,
            "base_url": self.url,
            "api_key_env": self.key_env,
            "timeout_s": 10.0,
            "connect_timeout_s": 2.0,
        }
        fields.update(overrides)
        return ProviderConfig(**fields)

    def model_config(self, name: str = "batchy", **overrides: Any) -> ModelConfig:
        fields: dict[str, Any] = {
            "name": name,
            "provider": f"fake-batch-{self.kind}-{self.number}",
            "upstream_model": self.default_model,
            "input_cost_per_mtok": 2.0,
            "output_cost_per_mtok": 8.0,
        }
        fields.update(overrides)
        return ModelConfig(**fields)

    # -- the lifecycle -----------------------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _new(self, items: list[tuple[str, dict[str, Any]]], metadata: dict[str, Any], prefix: str) -> FakeBatch:
        self.created += 1
        batch = FakeBatch(f"{prefix}{self.number}x{self.created:04d}", items, metadata)
        batch.status = self.lifecycle[0]
        self.batches[batch.id] = batch
        return batch

    def _advance(self, batch: FakeBatch) -> None:
        """One poll: the next scripted status, unless the batch has ended (or is being cancelled)."""
        if batch.status in self.ended:
            return
        if batch.cancel_requested:
            batch.status = self.cancelled_status()
            return
        batch.polls += 1
        batch.status = self.lifecycle[min(batch.polls, len(self.lifecycle) - 1)]

    def cancelled_status(self) -> str:
        raise NotImplementedError

    def render(self, batch: FakeBatch) -> dict[str, Any]:
        raise NotImplementedError

    def _refused(self, request: web.Request) -> web.Response | None:
        """What the real API answers to a request it does not authenticate; None for one it does."""
        raise NotImplementedError

    async def _create_body(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """A create's body, and the refusal the real API (or the test's `refuse_create`) answers it with, if any."""
        if (refused := self._refused(request)) is not None:
            return None, refused
        return await request.json(), await self._scripted_refusal()

    async def _scripted_refusal(self) -> web.Response | None:
        """The answer `refuse_create` scripted for this create, once (after `slow_s`)."""
        await asyncio.sleep(self.slow_s)
        if self.refuse_create is None:
            return None
        status, self.refuse_create = self.refuse_create, None
        return self.error(status, "refused by the test")

    async def get(self, request: web.Request) -> web.Response:
        """A poll: the batch's next scripted status."""
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.error(404, "no such batch")
        self._advance(batch)
        return _json(self.render(batch))

    def outcomes(self, batch: FakeBatch) -> list[tuple[int, str, int | None]]:
        """(position, custom_id, HTTP status or None when unanswered) in the order the results come back."""
        order = list(enumerate(batch.items))
        if self.reverse:
            order.reverse()
        return [
            (i, custom_id, None if i in self.unanswered else self.fail_items.get(i, 200)) for i, (custom_id, _) in order
        ]

    def _check_key(self, request: web.Request, header: str, prefix: str = "") -> web.Response | None:
        if request.headers.get(header) != f"{prefix}{self.api_key}":
            return self.error(401, "invalid api key")
        return None

    def error(self, status: int, message: str) -> web.Response:
        raise NotImplementedError


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class FakeOpenAIBatches(FakeBatchApi):
    """OpenAI (flavour openai) or Azure OpenAI (flavour azure: /openai/... with api-version)."""

    kind = "openai"
    provider_type: ClassVar[str] = "openai"
    default_model = "gpt-4o-mini"
    lifecycle_default: ClassVar[list[str]] = ["validating", "in_progress", "finalizing", "completed"]
    ended = frozenset({"completed", "expired", "cancelled", "failed"})

    def __init__(self, *, azure: bool = False, api_version: str = "2024-10-21", **options: Any) -> None:
        super().__init__(**options)
        self.azure = azure
        self.api_version = api_version
        if azure:
            self.kind = "azure_openai"
        self.files: dict[str, tuple[str, bytes]] = {}
        """id -> (purpose, content)."""

    @property
    def endpoint(self) -> str:
        return "/chat/completions" if self.azure else "/v1/chat/completions"

    @property
    def url(self) -> str:
        return super().url if self.azure else f"{super().url}/v1"

    def provider_config(self, name: str | None = None, **overrides: Any) -> ProviderConfig:
        if self.azure:
            overrides = {"type": "azure_openai", "api_version": self.api_version, **overrides}
        return super().provider_config(name, **overrides)

    def add_routes(self, app: web.Application) -> None:
        root = "/openai" if self.azure else "/v1"
        app.router.add_post(f"{root}/files", self.upload)
        app.router.add_get(f"{root}/files/{{id}}/content", self.content)
        app.router.add_post(f"{root}/batches", self.create)
        app.router.add_get(f"{root}/batches", self.list)
        app.router.add_get(f"{root}/batches/{{id}}", self.get)
        app.router.add_post(f"{root}/batches/{{id}}/cancel", self.cancel)

    def error(self, status: int, message: str) -> web.Response:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return _json({"error": {"message": message, "type": kind, "param": None, "code": None}}, status)

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.azure:
            if request.query.get("api-version") != self.api_version:
                return self.error(404, "Resource not found")
            return self._check_key(request, "api-key")
        return self._check_key(request, "authorization", "Bearer ")

    async def upload(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        await asyncio.sleep(self.slow_s)
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return self.error(400, "purpose must be batch and file a JSONL file")
        content = upload.file.read()
        seen: set[str] = set()
        for raw in content.splitlines():
            line = orjson.loads(raw)
            if set(line) != {"custom_id", "method", "url", "body"} or line["method"] != "POST":
                return self.error(400, "each line needs custom_id, method POST, url and body")
            if line["url"] != self.endpoint or line["custom_id"] in seen:
                return self.error(400, f"bad url or repeated custom_id in line {line['custom_id']}")
            if not self.azure and "model" not in line["body"]:
                return self.error(400, "the body must name a model")
            if self.azure and line["body"].get("model") != self.default_model:
                return self.error(400, "the body must name the global batch deployment")
            seen.add(line["custom_id"])
        file_id = f"file-{self.number}x{len(self.files) + 1:04d}"
        self.files[file_id] = ("batch", content)
        return _json(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": upload.filename,
                "purpose": "batch",
                "status": "processed",
            }
        )

    async def content(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        found = self.files.get(request.match_info["id"])
        if found is None:
            return self.error(404, "No such File object")
        return web.Response(body=found[1], content_type="application/octet-stream")

    async def create(self, request: web.Request) -> web.Response:
        body, refusal = await self._create_body(request)
        if refusal is not None:
            return refusal
        if set(body) - {"input_file_id", "endpoint", "completion_window", "metadata"}:
            return self.error(400, "Unrecognized request argument supplied")
        if body.get("completion_window") != "24h" or body.get("endpoint") != self.endpoint:
            return self.error(400, "completion_window must be 24h and endpoint the lines' url")
        found = self.files.get(str(body.get("input_file_id")))
        if found is None:
            return self.error(400, "input_file_id is not a batch file")
        items = [(line["custom_id"], line["body"]) for line in map(orjson.loads, found[1].splitlines())]
        batch = self._new(items, body.get("metadata") or {}, "batch_")
        batch.metadata["input_file_id"] = body["input_file_id"]
        return _json(self.render(batch))

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        data = [self.render(b) for b in reversed(self.batches.values())]
        return _json({"object": "list", "data": data, "has_more": False})

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return self.error(404, "No such batch")
        batch.cancel_requested = True
        batch.status = "cancelling"
        return _json(self.render(batch))

    def cancelled_status(self) -> str:
        return "cancelled"

    def render(self, batch: FakeBatch) -> dict[str, Any]:
        output = error = None
        if batch.status in ("completed", "expired", "cancelled"):
            output, error = self._result_files(batch)
        metadata = {k: v for k, v in batch.metadata.items() if k != "input_file_id"}
        outcomes = self.outcomes(batch)
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": [{"code": "invalid", "message": "bad"}]}
            if batch.status == "failed"
            else None,
            "input_file_id": batch.metadata.get("input_file_id"),
            "completion_window": "24h",
            "status": batch.status,
            "output_file_id": output,
            "error_file_id": error,
            "created_at": int(batch.created_at),
            "request_counts": {
                "total": len(batch.items),
                "completed": sum(1 for _, _, s in outcomes if s == 200),
                "failed": sum(1 for _, _, s in outcomes if s != 200),
            },
            "metadata": metadata,
        }

    def _result_files(self, batch: FakeBatch) -> tuple[str | None, str | None]:
        out_id, err_id = f"file-out-{batch.id}", f"file-err-{batch.id}"
        if out_id in self.files:
            return out_id, err_id
        out: list[bytes] = []
        err: list[bytes] = []
        for i, custom_id, status in self.outcomes(batch):
            if status is None:
                code = "batch_expired" if batch.status == "expired" else "batch_cancelled"
                line = {
                    "id": f"batch_req_{i}",
                    "custom_id": custom_id,
                    "response": None,
                    "error": {"code": code, "message": f"This request could not be executed ({code})."},
                }
                err.append(orjson.dumps(line))
            elif status != 200:
                body = {"error": {"message": "The server had an error", "type": "server_error", "code": None}}
                line = {
                    "id": f"batch_req_{i}",
                    "custom_id": custom_id,
                    "response": {"status_code": status, "request_id": f"r{i}", "body": body},
                    "error": None,
                }
                err.append(orjson.dumps(line))
            else:
                body = {
                    "id": f"chatcmpl-{i}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": self.default_model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"answer to {custom_id}"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": PROMPT_TOKENS,
                        "completion_tokens": COMPLETION_TOKENS,
                        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                    },
                }
                line = {
                    "id": f"batch_req_{i}",
                    "custom_id": custom_id,
                    "response": {"status_code": 200, "request_id": f"r{i}", "body": body},
                    "error": None,
                }
                out.append(orjson.dumps(line))
        self.files[out_id] = ("batch_output", b"\n".join(out) + b"\n")
        self.files[err_id] = ("batch_output", b"\n".join(err) + b"\n")
        return (out_id if out else None), (err_id if err else None)


class FakeAnthropicBatches(FakeBatchApi):
    kind = "anthropic"
    provider_type: ClassVar[str] = "anthropic"
    default_model = "claude-3-5-haiku-20241022"
    lifecycle_default: ClassVar[list[str]] = ["in_progress", "in_progress", "ended"]
    ended = frozenset({"ended"})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self.create)
        app.router.add_get("/v1/messages/batches", self.list)
        app.router.add_get("/v1/messages/batches/{id}", self.get)
        app.router.add_get("/v1/messages/batches/{id}/results", self.results)
        app.router.add_post("/v1/messages/batches/{id}/cancel", self.cancel)

    def error(self, status: int, message: str) -> web.Response:
        kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
            status, "invalid_request_error" if status < 500 else "api_error"
        )
        return _json({"type": "error", "error": {"type": kind, "message": message}}, status)

    def _refused(self, request: web.Request) -> web.Response | None:
        if not request.headers.get("anthropic-version"):
            return self.error(400, "anthropic-version header is required")
        return self._check_key(request, "x-api-key")

    async def create(self, request: web.Request) -> web.Response:
        body, refusal = await self._create_body(request)
        if refusal is not None:
            return refusal
        requests = body.get("requests")
        if set(body) != {"requests"} or not isinstance(requests, list) or not requests:
            return self.error(400, "requests: a non-empty list is required")
        seen: set[str] = set()
        for entry in requests:
            custom_id = str(entry.get("custom_id") or "")
            params = entry.get("params") or {}
            if not custom_id.replace("-", "").replace("_", "").isalnum() or len(custom_id) > 64 or custom_id in seen:
                return self.error(400, f"requests: custom_id {custom_id!r} is invalid or repeated")
            if not {"model", "max_tokens", "messages"} <= set(params) or "stream" in params:
                return self.error(400, "params: model, max_tokens and messages are required; stream is not allowed")
            seen.add(custom_id)
        batch = self._new([(e["custom_id"], e["params"]) for e in requests], {}, "msgbatch_")
        return _json(self.render(batch))

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        data = [self.render(b) for b in reversed(self.batches.values())]
        return _json({"data": data, "has_more": False, "first_id": None, "last_id": None})

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches[request.match_info["id"]]
        batch.cancel_requested = True
        batch.status = "canceling"
        return _json(self.render(batch))

    def cancelled_status(self) -> str:
        return "ended"

    async def results(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        batch = self.batches[request.match_info["id"]]
        if batch.status != "ended":
            return self.error(400, "results are not ready")
        lines = []
        for i, custom_id, status in self.outcomes(batch):
            if status is None:
                result: dict[str, Any] = {"type": "canceled" if batch.cancel_requested else "expired"}
            elif status != 200:
                result = {
                    "type": "errored",
                    "error": {"type": "error", "error": {"type": "api_error", "message": "Internal error"}},
                }
            else:
                message = {
                    "id": f"msg_{i}",
                    "type": "message",
                    "role": "assistant",
                    "model": self.default_model,
                    "content": [{"type": "text", "text": f"answer to {custom_id}"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": COMPLETION_TOKENS},
                }
                result = {"type": "succeeded", "message": message}
            lines.append(orjson.dumps({"custom_id": custom_id, "result": result}))
        return web.Response(body=b"\n".join(lines) + b"\n", content_type="application/binary")

    def render(self, batch: FakeBatch) -> dict[str, Any]:
        ended = batch.status == "ended"
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for _, _, status in self.outcomes(batch):
            if not ended:
                counts["processing"] += 1
            elif status is None:
                counts["canceled" if batch.cancel_requested else "expired"] += 1
            else:
                counts["succeeded" if status == 200 else "errored"] += 1
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + 86400),
            "ended_at": _rfc3339(time.time()) if ended else None,
            "cancel_initiated_at": _rfc3339(time.time()) if batch.cancel_requested else None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


class FakeGeminiBatches(FakeBatchApi):
    kind = "gemini"
    provider_type: ClassVar[str] = "gemini"
    default_model = "gemini-2.0-flash"
    lifecycle_default: ClassVar[list[str]] = ["BATCH_STATE_PENDING", "BATCH_STATE_RUNNING", "BATCH_STATE_SUCCEEDED"]
    ended = frozenset({"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"})

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{model}:batchGenerateContent", self.create)
        app.router.add_get("/v1beta/batches", self.list)
        app.router.add_get("/v1beta/batches/{id}", self.get)
        app.router.add_post("/v1beta/batches/{id}:cancel", self.cancel)

    def error(self, status: int, message: str) -> web.Response:
        reason = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND"}.get(status, "INTERNAL")
        return _json({"error": {"code": status, "message": message, "status": reason}}, status)

    def _refused(self, request: web.Request) -> web.Response | None:
        return self._check_key(request, "x-goog-api-key")

    async def create(self, request: web.Request) -> web.Response:
        body, refusal = await self._create_body(request)
        if refusal is not None:
            return refusal
        batch = body.get("batch") or {}
        entries = (((batch.get("input_config") or {}).get("requests") or {}).get("requests")) or []
        if not batch.get("display_name") or not entries:
            return self.error(400, "batch.display_name and batch.input_config.requests.requests are required")
        items = []
        for entry in entries:
            if "contents" not in (entry.get("request") or {}) or not (entry.get("metadata") or {}).get("key"):
                return self.error(400, "each request needs contents and metadata.key")
            items.append((entry["metadata"]["key"], entry["request"]))
        made = self._new(items, {"displayName": batch["display_name"], "model": request.match_info["model"]}, "")
        return _json(self.render(made))

    async def list(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return _json({"operations": [self.render(b) for b in reversed(self.batches.values())]})

    async def cancel(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        self.batches[request.match_info["id"]].cancel_requested = True
        return _json({})

    def cancelled_status(self) -> str:
        return "BATCH_STATE_CANCELLED"

    def render(self, batch: FakeBatch) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "name": f"batches/{batch.id}",
            "metadata": {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "model": f"models/{batch.metadata.get('model')}",
                "displayName": batch.metadata.get("displayName"),
                "createTime": _rfc3339(batch.created_at),
                "state": batch.status,
                "name": f"batches/{batch.id}",
            },
        }
        if batch.status not in self.ended:
            return operation
        operation["done"] = True
        responses = []
        for _, key, status in self.outcomes(batch):
            if status is None:
                continue
            entry: dict[str, Any] = {"metadata": {"key": key}}
            if status != 200:
                entry["error"] = {"code": 13, "message": "Internal error encountered."}
            else:
                entry["response"] = {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": [{"text": f"answer to {key}"}]},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": PROMPT_TOKENS,
                        "candidatesTokenCount": COMPLETION_TOKENS,
                        "totalTokenCount": PROMPT_TOKENS + COMPLETION_TOKENS,
                    },
                    "modelVersion": self.default_model,
                }
            responses.append(entry)
        operation["response"] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput",
            "inlinedResponses": {"inlinedResponses": responses},
        }
        return operation
