"""OpenAI's Files and Batch APIs over the Batches service, so the `openai` SDK's batch calls work against the gateway:

    file = client.files.create(file=open("requests.jsonl", "rb"), purpose="batch")
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    client.batches.retrieve(batch.id); client.batches.cancel(batch.id); client.batches.list()
    client.files.content(batch.output_file_id).text   # once the batch has ended

Every line of a file must name the same model (a gateway model or route): a batch serves one. A batch's results are
served as OpenAI's output and error files (`<batch id>-output`, `<batch id>-errors`), rendered from the items'
outcomes: output lines `{"id", "custom_id", "response": {"status_code": 200, "request_id", "body"}, "error": null}`
with the answer as a chat.completion; error lines `{"id", "custom_id", "response": null, "error": {"code",
"message"}}`. The same refusals as the gRPC service, as OpenAI error bodies (errors.py)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.batches.admission import Header, Submitted
from gateway.batches.input_file import ENDPOINT, read_input
from gateway.batches.service import BatchService
from gateway.errors import InvalidRequest
from gateway.openai_schema import chat_request
from gateway.policy.keyring import KeyRing
from gateway.records.batches import BatchFile, BatchView, ItemState, Status, StoredItem
from gateway.records.governance import KeyRecord

OUTPUT_SUFFIX = "-output"
ERRORS_SUFFIX = "-errors"
_ENDED_AT = {
    Status.COMPLETED: "completed_at",
    Status.EXPIRED: "expired_at",
    Status.CANCELLED: "cancelled_at",
    Status.FAILED: "failed_at",
}


class BatchHandlers:
    def __init__(self, service: BatchService, ring: KeyRing, info: Any) -> None:
        """`info` turns an aiohttp request into the call's CallInfo (app.py `_info`)."""
        self._service = service
        self._ring = ring
        self._info = info

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files", self.list_files)
        app.router.add_get("/v1/files/{id}", self.file)
        app.router.add_get("/v1/files/{id}/content", self.content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches", self.list_batches)
        app.router.add_get("/v1/batches/{id}", self.get)
        app.router.add_post("/v1/batches/{id}/cancel", self.cancel)

    def _key(self, request: web.Request) -> KeyRecord:
        info = self._info(request)
        return self._ring.authenticate(info.metadata, info.peer)

    async def upload(self, request: web.Request) -> web.Response:
        key = self._key(request)
        try:
            form = await request.post()
        except ValueError:
            raise InvalidRequest("expected a multipart form with purpose and file", reason="MALFORMED_FORM") from None
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise InvalidRequest("the form has no file", reason="MISSING_FILE", metadata={"param": "file"})
        file = await self._service.upload(key, upload.filename, str(form.get("purpose") or ""), upload.file.read())
        return _json(_file(file))

    async def file(self, request: web.Request) -> web.Response:
        key = self._key(request)
        file_id = request.match_info["id"]
        batch_id, kind = _result_file(file_id)
        if batch_id is None:
            return _json(_file(await self._service.file(key, file_id)))
        view = await self._service.get(key, batch_id)
        content = await self._results(key, batch_id, kind)
        return _json(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(view.job.ended_at or view.job.created_at),
                "filename": f"{file_id}.jsonl",
                "purpose": "batch_output",
                "status": "processed",
            }
        )

    async def content(self, request: web.Request) -> web.Response:
        key = self._key(request)
        file_id = request.match_info["id"]
        batch_id, kind = _result_file(file_id)
        if batch_id is None:
            content = await self._service.file_content(key, file_id)
        else:
            content = await self._results(key, batch_id, kind)
        return web.Response(body=content, content_type="application/octet-stream")

    async def _results(self, key: KeyRecord, batch_id: str, kind: str) -> bytes:
        wanted = ItemState.SUCCEEDED if kind == OUTPUT_SUFFIX else ItemState.FAILED
        items = [i for i in await self._service.items(key, batch_id) if i.state is wanted]
        return b"".join(orjson.dumps(_result_line(item)) + b"\n" for item in items)

    async def create(self, request: web.Request) -> web.Response:
        key = self._key(request)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise InvalidRequest("the body is not valid JSON", reason="MALFORMED_JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the body must be a JSON object", reason="MALFORMED_JSON")
        endpoint = body.get("endpoint")
        if endpoint != ENDPOINT:
            raise InvalidRequest(
                f"endpoint {endpoint!r}: only {ENDPOINT} is batched",
                reason="UNSUPPORTED_ENDPOINT",
                metadata={"param": "endpoint"},
            )
        file_id = str(body.get("input_file_id") or "")
        lines = read_input(await self._service.file_content(key, file_id))
        models = {str(line.body.get("model") or "") for line in lines}
        if len(models) != 1:
            raise InvalidRequest(
                f"the file's lines name {len(models)} models ({', '.join(sorted(models))}); a batch serves one",
                reason="MODEL_MISMATCH",
                metadata={"param": "input_file_id"},
            )
        items = [Submitted(line.custom_id, _request(line.custom_id, line.body)) for line in lines]
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata must be an object", reason="BAD_METADATA", metadata={"param": "metadata"})
        header = Header(
            models.pop(),
            str(body.get("completion_window") or ""),
            {str(k): str(v) for k, v in metadata.items()},
            source_file_id=file_id,
        )
        view = await self._service.submit(key, self._info(request), header, items)
        return _json(_batch(view))

    async def get(self, request: web.Request) -> web.Response:
        return _json(_batch(await self._service.get(self._key(request), request.match_info["id"])))

    async def cancel(self, request: web.Request) -> web.Response:
        return _json(_batch(await self._service.cancel(self._key(request), request.match_info["id"])))

    async def list_batches(self, request: web.Request) -> web.Response:
        views, more = await self._service.list_batches(
            self._key(request), _limit(request), request.query.get("after", "")
        )
        return _page([_batch(view) for view in views], more)

    async def list_files(self, request: web.Request) -> web.Response:
        """OpenAI's GET /v1/files (`purpose`, `limit`, `order`, `after`): the files uploaded for batches, newest first.
        A batch's output and error files are not listed (they are named on the batch)."""
        key = self._key(request)
        purpose = request.query.get("purpose", "batch")
        if request.query.get("order", "desc") != "desc":
            raise InvalidRequest("order: the gateway lists files newest first only (desc)", reason="UNSUPPORTED_ORDER")
        if purpose != "batch":
            return _page([], False)  # the gateway keeps files for batches only
        files, more = await self._service.list_files(key, _limit(request), request.query.get("after", ""))
        return _page([_file(file) for file in files], more)


def _limit(request: web.Request) -> int:
    """The `limit` query parameter; 0 (the service's default) when absent."""
    try:
        return int(request.query.get("limit", "0"))
    except ValueError:
        raise InvalidRequest("limit must be an integer", reason="BAD_LIMIT", metadata={"param": "limit"}) from None


def _page(data: list[dict[str, Any]], more: bool) -> web.Response:
    """A page of a list, as OpenAI's list endpoints answer (cursor: `after` the last id)."""
    return _json(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": more,
        }
    )


def _request(custom_id: str, body: dict[str, Any]) -> Any:
    try:
        return chat_request(body)[0]
    except InvalidRequest as err:
        raise InvalidRequest(
            f"line {custom_id!r}: {err.message}", reason=err.reason, metadata={**err.metadata, "custom_id": custom_id}
        ) from None


def _result_file(file_id: str) -> tuple[str | None, str]:
    """(batch id, suffix) of a results file's id; (None, "") for an uploaded file's."""
    for suffix in (OUTPUT_SUFFIX, ERRORS_SUFFIX):
        if file_id.startswith("batch_") and file_id.endswith(suffix):
            return file_id.removesuffix(suffix), suffix
    return None, ""


def _file(file: BatchFile) -> dict[str, Any]:
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
    }


def _batch(view: BatchView) -> dict[str, Any]:
    job, counts = view.job, view.counts
    ended = job.status.ended
    rendered: dict[str, Any] = {
        "id": job.id,
        "object": "batch",
        "endpoint": ENDPOINT,
        "errors": {"object": "list", "data": [{"code": "batch_failed", "message": job.error}]} if job.error else None,
        "input_file_id": job.source_file_id or "",
        "completion_window": job.completion_window,
        "status": job.status.value,
        "output_file_id": f"{job.id}{OUTPUT_SUFFIX}" if ended and counts.succeeded else None,
        "error_file_id": f"{job.id}{ERRORS_SUFFIX}" if ended and counts.failed else None,
        "created_at": int(job.created_at),
        "request_counts": {"total": counts.total, "completed": counts.succeeded, "failed": counts.failed},
        "metadata": job.labels or None,
        "model": job.model,
    }
    if ended and job.ended_at is not None:
        rendered[_ENDED_AT[job.status]] = int(job.ended_at)
    return rendered


def _result_line(item: StoredItem) -> dict[str, Any]:
    outcome = item.outcome or {}
    error = outcome.get("error")
    if error is not None:
        return {
            "id": item.request_id,
            "custom_id": item.custom_id,
            "response": None,
            "error": {"code": str(error["reason"]).lower(), "message": error["message"]},
        }
    usage = outcome["usage"]
    message: dict[str, Any] = {"role": "assistant", "content": outcome["text"] or None}
    if outcome["tool_calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in outcome["tool_calls"]
        ]
    completion = {
        "id": item.request_id,
        "object": "chat.completion",
        "created": int(item.settled_at or 0),
        "model": outcome["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": outcome["finish_reason"]}],
        "usage": {
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": usage["cached_prompt_tokens"]},
        },
    }
    return {
        "id": item.request_id,
        "custom_id": item.custom_id,
        "response": {"status_code": 200, "request_id": item.request_id, "body": completion},
        "error": None,
    }


def _json(payload: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")
