"""OpenAI's Batch API, and Azure OpenAI's (the same API under the resource's /openai path, with api-version).

Reference: https://platform.openai.com/docs/api-reference/batch and /files (openai/openai-openapi). The items go up
as a JSONL file (POST /files, multipart, `purpose=batch`), one line per item: `{"custom_id", "method": "POST", "url":
"/v1/chat/completions", "body"}`. POST /batches creates the batch from the file (`endpoint`, `completion_window`
24h, `metadata`, where the gateway's batch id goes so a restart can find a batch it made); GET /batches/{id} polls
it (validating, in_progress, finalizing, completed, expired, cancelling, cancelled, failed); its `output_file_id` and
`error_file_id` are JSONL files read with GET /files/{id}/content, each line `{"id", "custom_id", "response":
{"status_code", "request_id", "body"}, "error"}`, in any order; POST /batches/{id}/cancel cancels.

Azure: files at {base}/openai/files, batches at {base}/openai/batches, every call with `api-version`; the lines' `url`
is /chat/completions and their body names the (global batch) deployment in `model`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson

from gateway.batches.adapters.base import (
    HttpBatchApi,
    Line,
    RemoteResult,
    RemoteState,
    created_since,
    position_of,
    upstream_id,
)
from gateway.config.schema import ModelConfig
from gateway.providers.openai import OpenAIProvider
from gateway.records.batches import ItemError, Status

STATUS = {
    "validating": Status.VALIDATING,
    "in_progress": Status.IN_PROGRESS,
    "finalizing": Status.FINALIZING,
    "completed": Status.COMPLETED,
    "expired": Status.EXPIRED,
    "cancelling": Status.CANCELLING,
    "cancelled": Status.CANCELLED,
    "failed": Status.FAILED,
}
JOB_METADATA = "gateway_batch_id"
LIST_PAGE = 100


class OpenAIBatches(HttpBatchApi):
    uploads = True
    endpoint = "/v1/chat/completions"
    provider: OpenAIProvider

    def url(self, path: str) -> str:
        return f"{self.provider.config.url}/{path}"

    def params(self) -> dict[str, str]:
        return {}

    def headers(self) -> dict[str, str]:
        return self.provider.auth_headers()

    def line_body(self, line: Line, model: ModelConfig) -> dict[str, Any]:
        return self.provider.build_request(line.request, model, stream=False).body

    async def upload(self, job_id: str, lines: list[Line], model: ModelConfig) -> str:
        content = b"".join(
            orjson.dumps(
                {
                    "custom_id": upstream_id(line.position),
                    "method": "POST",
                    "url": self.endpoint,
                    "body": self.line_body(line, model),
                }
            )
            + b"\n"
            for line in lines
        )
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", content, filename=f"{job_id}.jsonl", content_type="application/jsonl")
        answer = await self.fetch_json(
            "POST", self.url("files"), headers=self.headers(), data=form, params=self.params()
        )
        return str(answer["id"])

    async def find(self, job_id: str, since: float, count: int) -> str | None:
        page = await self.fetch_json(
            "GET", self.url("batches"), headers=self.headers(), params={**self.params(), "limit": str(LIST_PAGE)}
        )
        for batch in page.get("data") or ():
            mine = (batch.get("metadata") or {}).get(JOB_METADATA) == job_id
            if mine and created_since(float(batch.get("created_at") or 0), since):
                return str(batch["id"])
        return None

    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        body = {
            "input_file_id": file_id,
            "endpoint": self.endpoint,
            "completion_window": window,
            "metadata": {JOB_METADATA: job_id},
        }
        answer = await self.fetch_json(
            "POST", self.url("batches"), headers=self.headers(), json=body, params=self.params()
        )
        return str(answer["id"])

    async def poll(self, batch_id: str) -> RemoteState:
        batch = await self.fetch_json(
            "GET", self.url(f"batches/{batch_id}"), headers=self.headers(), params=self.params()
        )
        status = STATUS.get(str(batch.get("status")), Status.IN_PROGRESS)
        files = [batch.get("output_file_id"), batch.get("error_file_id")]
        error = self.provider.redact(_batch_error(batch)) if status is Status.FAILED else ""
        return RemoteState(status, [f for f in files if f], error)

    async def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        for file_id in state.output or ():
            url = self.url(f"files/{file_id}/content")
            async for line in self.fetch_jsonl(url, headers=self.headers(), params=self.params()):
                position = position_of(str(line.get("custom_id") or ""))
                if position is not None:
                    yield self._result(position, line, model)

    def _result(self, position: int, line: Mapping[str, Any], model: ModelConfig) -> RemoteResult:
        response = line.get("response") or {}
        status = int(response.get("status_code") or 0)
        if status == 200:
            parsed = self.parse_answer(response.get("body"), model)
            if isinstance(parsed, ItemError):
                return RemoteResult(position, error=parsed)
            return RemoteResult(position, answer=parsed)
        if status:
            return RemoteResult(position, error=self.upstream_error(status, response.get("body")))
        error = line.get("error") or {}
        code = str(error.get("code") or "")
        message = self.provider.redact(str(error.get("message") or code or "no answer"))
        if code == "batch_expired":
            return RemoteResult(position, error=ItemError("DEADLINE_EXCEEDED", "BATCH_EXPIRED", message))
        if code == "batch_cancelled":
            return RemoteResult(position, error=ItemError("CANCELLED", "BATCH_CANCELLED", message))
        return RemoteResult(position, error=ItemError("UNAVAILABLE", "UPSTREAM_BATCH_ITEM_FAILED", message))

    async def cancel(self, batch_id: str) -> None:
        await self.fetch("POST", self.url(f"batches/{batch_id}/cancel"), headers=self.headers(), params=self.params())


def _batch_error(batch: Mapping[str, Any]) -> str:
    errors = (batch.get("errors") or {}).get("data") or []
    return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or "the provider failed the batch"


class AzureOpenAIBatches(OpenAIBatches):
    endpoint = "/chat/completions"

    def url(self, path: str) -> str:
        return f"{self.provider.config.url}/openai/{path}"

    def params(self) -> dict[str, str]:
        return {"api-version": self.provider.config.api_version or ""}

    def line_body(self, line: Line, model: ModelConfig) -> dict[str, Any]:
        return {"model": model.upstream, **super().line_body(line, model)}
