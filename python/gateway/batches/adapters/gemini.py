"""The Gemini API's batch mode, with the requests inline.

Reference: https://ai.google.dev/api/batch-mode (googleapis/python-genai, batches.py). POST
/v1beta/models/{model}:batchGenerateContent with `{"batch": {"display_name", "input_config": {"requests":
{"requests": [{"request": GenerateContentRequest, "metadata": {"key"}}]}}}}` answers a long-running Operation named
`batches/{id}`; GET /v1beta/batches/{id} polls it (`metadata.state`: BATCH_STATE_PENDING, RUNNING, SUCCEEDED, FAILED,
CANCELLED, EXPIRED), and once done its `response.inlinedResponses.inlinedResponses` hold each item's
GenerateContentResponse (or its `error`, a google.rpc.Status) with the item's metadata; POST
/v1beta/batches/{id}:cancel cancels. The gateway's batch id is the display name, which a restart looks for. Inline
requests are bounded at 20 MB a batch by the API; larger batches (an uploaded JSONL file) are not supported here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from gateway.batches.adapters.base import (
    HttpBatchApi,
    Line,
    RemoteResult,
    RemoteState,
    created_since,
    position_of,
    rfc3339,
    upstream_id,
)
from gateway.config.schema import ModelConfig
from gateway.providers.gemini import GeminiProvider
from gateway.records.batches import ItemError, Status

STATUS = {
    "BATCH_STATE_PENDING": Status.VALIDATING,
    "BATCH_STATE_RUNNING": Status.IN_PROGRESS,
    "BATCH_STATE_SUCCEEDED": Status.COMPLETED,
    "BATCH_STATE_FAILED": Status.FAILED,
    "BATCH_STATE_CANCELLED": Status.CANCELLED,
    "BATCH_STATE_EXPIRED": Status.EXPIRED,
}
LIST_PAGE = 100
# google.rpc.Code numbers as HTTP statuses, for the provider's error mapping.
_RPC_HTTP = {3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500, 14: 503, 16: 401}


class GeminiBatches(HttpBatchApi):
    provider: GeminiProvider

    def url(self, path: str) -> str:
        return f"{self.provider.config.url}/v1beta/{path}"

    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.provider.require_api_key()}

    async def find(self, job_id: str, since: float, count: int) -> str | None:
        page = await self.fetch_json(
            "GET", self.url("batches"), headers=self.headers(), params={"pageSize": str(LIST_PAGE)}
        )
        for operation in page.get("operations") or ():
            metadata = operation.get("metadata") or {}
            if metadata.get("displayName") == job_id and created_since(rfc3339(metadata.get("createTime")), since):
                return str(operation["name"])
        return None

    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        requests = [
            {
                "request": self.provider.build_request(line.request, model, stream=False).body,
                "metadata": {"key": upstream_id(line.position)},
            }
            for line in lines
        ]
        body = {"batch": {"display_name": job_id, "input_config": {"requests": {"requests": requests}}}}
        path = f"models/{model.upstream.removeprefix('models/')}:batchGenerateContent"
        answer = await self.fetch_json("POST", self.url(path), headers=self.headers(), json=body)
        return str(answer["name"])

    async def poll(self, batch_id: str) -> RemoteState:
        operation = await self.fetch_json("GET", self.url(batch_id), headers=self.headers())
        metadata = operation.get("metadata") or {}
        status = STATUS.get(str(metadata.get("state")), Status.IN_PROGRESS)
        error = operation.get("error") or {}
        message = self.provider.redact(str(error.get("message") or "the provider failed the batch"))
        responses = ((operation.get("response") or {}).get("inlinedResponses") or {}).get("inlinedResponses")
        return RemoteState(status, responses or [], message if status is Status.FAILED else "")

    async def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        for entry in state.output or ():
            position = position_of(str((entry.get("metadata") or {}).get("key") or ""))
            if position is not None:
                yield self._result(position, entry, model)

    def _result(self, position: int, entry: Mapping[str, Any], model: ModelConfig) -> RemoteResult:
        if entry.get("error"):
            error: Mapping[str, Any] = entry["error"]
            status = _RPC_HTTP.get(int(error.get("code") or 13), 500)
            return RemoteResult(position, error=self.upstream_error(status, {"error": error}))
        parsed = self.parse_answer(entry.get("response"), model)
        if isinstance(parsed, ItemError):
            return RemoteResult(position, error=parsed)
        return RemoteResult(position, answer=parsed)

    async def cancel(self, batch_id: str) -> None:
        await self.fetch("POST", self.url(f"{batch_id}:cancel"), headers=self.headers())
