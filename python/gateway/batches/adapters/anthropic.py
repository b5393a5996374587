"""Anthropic's Message Batches API.

Reference: https://docs.anthropic.com/en/api/creating-message-batches (anthropics/anthropic-sdk-python,
resources/messages/batches.py). POST /v1/messages/batches takes the items inline, `{"requests": [{"custom_id",
"params"}]}`, each `params` a Messages API body; GET /v1/messages/batches/{id} polls it (`processing_status`
in_progress, canceling, ended; `request_counts`; `cancel_initiated_at`; `results_url` once ended); the results are
JSONL at `results_url`, each line `{"custom_id", "result": {"type": "succeeded", "message"} | {"type": "errored",
"error": {"type": "error", "error": {"type", "message"}}} | {"type": "canceled"} | {"type": "expired"}}`, in any
order; POST /v1/messages/batches/{id}/cancel cancels. A batch carries no metadata: a restart that crashed while
creating one looks for a batch created since then with as many requests.
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
    error_of,
    position_of,
    rfc3339,
    upstream_id,
)
from gateway.config.schema import ModelConfig
from gateway.providers.anthropic import DEFAULT_VERSION, AnthropicProvider
from gateway.records.batches import ItemError, Status

LIST_PAGE = 100


class AnthropicBatches(HttpBatchApi):
    provider: AnthropicProvider

    def url(self, path: str = "") -> str:
        return f"{self.provider.config.url}/v1/messages/batches{path}"

    def headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.provider.require_api_key(),
            "anthropic-version": self.provider.config.api_version or DEFAULT_VERSION,
        }

    async def find(self, job_id: str, since: float, count: int) -> str | None:
        page = await self.fetch_json("GET", self.url(), headers=self.headers(), params={"limit": str(LIST_PAGE)})
        found = [
            str(batch["id"])
            for batch in page.get("data") or ()
            if created_since(rfc3339(batch.get("created_at")), since)
            and sum(int(n or 0) for n in (batch.get("request_counts") or {}).values()) == count
        ]
        return found[0] if len(found) == 1 else None

    async def create(self, job_id: str, file_id: str | None, lines: list[Line], model: ModelConfig, window: str) -> str:
        requests = [
            {
                "custom_id": upstream_id(line.position),
                "params": self.provider.build_request(line.request, model, stream=False).body,
            }
            for line in lines
        ]
        answer = await self.fetch_json("POST", self.url(), headers=self.headers(), json={"requests": requests})
        return str(answer["id"])

    async def poll(self, batch_id: str) -> RemoteState:
        batch = await self.fetch_json("GET", self.url(f"/{batch_id}"), headers=self.headers())
        processing = batch.get("processing_status")
        if processing == "canceling":
            return RemoteState(Status.CANCELLING)
        if processing != "ended":
            return RemoteState(Status.IN_PROGRESS)
        counts = batch.get("request_counts") or {}
        if batch.get("cancel_initiated_at"):
            status = Status.CANCELLED
        elif int(counts.get("expired") or 0) and not int(counts.get("succeeded") or 0):
            status = Status.EXPIRED
        else:
            status = Status.COMPLETED
        return RemoteState(status, batch.get("results_url"))

    async def results(self, batch_id: str, state: RemoteState, model: ModelConfig) -> AsyncIterator[RemoteResult]:
        url = state.output or self.url(f"/{batch_id}/results")
        async for line in self.fetch_jsonl(str(url), headers=self.headers()):
            position = position_of(str(line.get("custom_id") or ""))
            if position is not None:
                yield self._result(position, line.get("result") or {}, model)

    def _result(self, position: int, result: Mapping[str, Any], model: ModelConfig) -> RemoteResult:
        kind = result.get("type")
        if kind == "succeeded":
            parsed = self.parse_answer(result.get("message"), model)
            if isinstance(parsed, ItemError):
                return RemoteResult(position, error=parsed)
            return RemoteResult(position, answer=parsed)
        if kind == "errored":
            error = result.get("error") or {}
            body = error if error.get("type") == "error" else {"type": "error", "error": error}
            return RemoteResult(position, error=error_of(self.provider.error_from_body(body)))
        if kind == "expired":
            return RemoteResult(
                position, error=ItemError("DEADLINE_EXCEEDED", "BATCH_EXPIRED", "the batch expired before this item")
            )
        return RemoteResult(position, error=ItemError("CANCELLED", "BATCH_CANCELLED", "the batch was cancelled"))

    async def cancel(self, batch_id: str) -> None:
        await self.fetch("POST", self.url(f"/{batch_id}/cancel"), headers=self.headers())
