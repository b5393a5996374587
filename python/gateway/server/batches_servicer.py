"""The Batches service: thin translation between protobuf and the batch operations (gateway/batches/service.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson
from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import batches_pb2_grpc

from gateway.batches.admission import Header, Submitted
from gateway.batches.service import BatchService
from gateway.chat import ChatRequest
from gateway.errors import GatewayError, InvalidRequest
from gateway.openai_schema import chat_request
from gateway.policy.keyring import KeyRing
from gateway.server.batches_convert import batch_to_proto, result_to_proto
from gateway.server.convert import chat_request_from_proto
from gateway.server.errors import streaming, unary
from gateway.server.servicer import call_info

Context = grpc.aio.ServicerContext[Any, Any]


class BatchesServicer(batches_pb2_grpc.BatchesServicer):
    def __init__(self, service: BatchService, ring: KeyRing, max_items: int) -> None:
        self._service = service
        self._ring = ring
        self._max_items = max_items

    @unary
    async def SubmitBatch(  # noqa: N802 - gRPC name
        self, request_iterator: AsyncIterator[bpb.SubmitBatchRequest], context: Context
    ) -> bpb.Batch:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        header: Header | None = None
        items: list[Submitted] = []
        async for message in request_iterator:
            part = message.WhichOneof("part")
            if header is None:
                if part != "header":
                    raise InvalidRequest("the first message of a batch must be its header", reason="MISSING_HEADER")
                h = message.header
                header = Header(h.model, h.completion_window, dict(h.metadata))
                continue
            if part != "item":
                raise InvalidRequest("only the first message of a batch may be a header", reason="REPEATED_HEADER")
            if len(items) >= self._max_items:
                raise InvalidRequest(
                    f"the batch has more than batches.max_items ({self._max_items}) items; split it",
                    reason="BATCH_TOO_LARGE",
                )
            items.append(Submitted(message.item.custom_id, _request(message.item, header.model)))
        if header is None:
            raise InvalidRequest("the batch is empty: send its header, then its items", reason="MISSING_HEADER")
        return batch_to_proto(await self._service.submit(key, call_info(context), header, items))

    @unary
    async def GetBatch(self, request: bpb.GetBatchRequest, context: Context) -> bpb.Batch:  # noqa: N802 - gRPC name
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        return batch_to_proto(await self._service.get(key, request.batch_id))

    @unary
    async def ListBatches(  # noqa: N802 - gRPC name
        self, request: bpb.ListBatchesRequest, context: Context
    ) -> bpb.ListBatchesResponse:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        views, more = await self._service.list_batches(key, request.limit, request.after)
        return bpb.ListBatchesResponse(batches=[batch_to_proto(v) for v in views], has_more=more)

    @unary
    async def CancelBatch(  # noqa: N802 - gRPC name
        self, request: bpb.CancelBatchRequest, context: Context
    ) -> bpb.Batch:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        return batch_to_proto(await self._service.cancel(key, request.batch_id))

    @streaming
    async def BatchResults(  # noqa: N802 - gRPC name
        self, request: bpb.BatchResultsRequest, context: Context
    ) -> AsyncIterator[bpb.BatchResult]:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        async for item in self._service.results(key, request.batch_id, follow=request.follow):
            yield result_to_proto(item)


def _request(item: bpb.BatchItem, model: str) -> ChatRequest:
    """An item's request, from protobuf or from an OpenAI Chat Completions body (the header's model where the item
    names none); a refusal names the item."""
    kind = item.WhichOneof("request")
    try:
        if kind == "chat":
            if not item.chat.model:
                item.chat.model = model
            return chat_request_from_proto(item.chat)
        if kind == "openai_body":
            try:
                body = orjson.loads(item.openai_body)
            except orjson.JSONDecodeError:
                raise InvalidRequest("openai_body is not JSON", reason="MALFORMED_JSON") from None
            if not isinstance(body, dict):
                raise InvalidRequest("openai_body must be a JSON object", reason="MALFORMED_JSON")
            return chat_request(body)[0]
    except GatewayError as err:
        raise InvalidRequest(
            f"item {item.custom_id!r}: {err.message}",
            reason=err.reason,
            metadata={**err.metadata, "custom_id": item.custom_id},
        ) from None
    raise InvalidRequest(f"item {item.custom_id!r} has no request", reason="MISSING_REQUEST")
