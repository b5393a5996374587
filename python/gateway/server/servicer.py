"""The Gateway service: thin translation between protobuf and the pipeline, as TGI's servicers are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from gateway.chat import ChatDelta, ChatRequest
from gateway.errors import InvalidRequest
from gateway.pipeline import Admission, CallInfo, ChatPipeline, deadline_from
from gateway.policy.access import check_model
from gateway.server.convert import (
    cache_info_to_proto,
    chat_request_from_proto,
    delta_tool_calls_to_proto,
    guardrails_to_proto,
    message_to_proto,
    messages_from_proto,
    route_to_proto,
    usage_to_proto,
)
from gateway.server.errors import abort
from gateway.tokens import TokenCount

Context = grpc.aio.ServicerContext[Any, Any]


def call_info(context: Context) -> CallInfo:
    return CallInfo(context.invocation_metadata(), deadline_from(context.time_remaining()), context.peer())


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, pipeline: ChatPipeline, max_input_chars: int) -> None:
        self._pipeline = pipeline
        self._max_input_chars = max_input_chars

    async def Chat(self, request: pb.ChatRequest, context: Context) -> pb.ChatResponse:  # noqa: N802 - gRPC name
        pipeline = self._pipeline
        call = call_info(context)
        state = pipeline.start(call, "chat", "Chat", request.model)
        record = state.record
        admission: Admission | None = None
        try:
            admission = pipeline.admit(self._chat_request(request), call, state, streaming=False)
            served = await pipeline.chat(admission)
        except BaseException as err:
            await pipeline.finish(state, admission, err)
            if isinstance(err, Exception):
                await abort(context, err)
            raise
        await pipeline.finish(state, admission, None)
        target = served.target
        return pb.ChatResponse(
            id=record.request_id,
            model=target.model.name,
            provider=target.provider.name,
            message=message_to_proto(served.result),
            finish_reason=served.result.finish_reason,
            usage=usage_to_proto(served.usage, served.cost_usd),
            upstream_model=served.result.upstream_model,
            simulated=target.provider.simulated,
            route=route_to_proto(admission.plan, admission.attempts),
            guardrails=guardrails_to_proto(record.guardrails) if record.guardrails else None,
            cache=cache_info_to_proto(admission.cache) if admission.cache is not None else None,
        )

    async def ChatStream(  # noqa: N802 - gRPC name
        self, request: pb.ChatRequest, context: Context
    ) -> AsyncIterator[pb.ChatChunk]:
        pipeline = self._pipeline
        call = call_info(context)
        state = pipeline.start(call, "stream", "ChatStream", request.model)
        record = state.record
        admission: Admission | None = None
        finished = False
        try:
            admission = pipeline.admit(self._chat_request(request), call, state, streaming=True)
            first = True
            async for item in pipeline.stream(admission):
                if isinstance(item, ChatDelta):
                    chunk = pb.ChatChunk(id=record.request_id, delta=item.text)
                    if item.tool_calls:
                        chunk.tool_calls.extend(delta_tool_calls_to_proto(item))
                else:
                    # The record is written (in strict mode, committed) before the final chunk leaves.
                    finished = True
                    await pipeline.finish(state, admission, None)
                    chunk = pb.ChatChunk(
                        id=record.request_id,
                        finish_reason=item.result.finish_reason,
                        usage=usage_to_proto(item.usage, item.cost_usd),
                        route=route_to_proto(admission.plan, admission.attempts),
                        guardrails=guardrails_to_proto(record.guardrails) if record.guardrails else None,
                        cache=cache_info_to_proto(admission.cache) if admission.cache is not None else None,
                    )
                if first:
                    target = admission.stream_target
                    assert target is not None
                    chunk.model = target.model.name
                    chunk.provider = target.provider.name
                    chunk.simulated = target.provider.simulated
                    first = False
                yield chunk
        except BaseException as err:
            if not finished:
                await pipeline.finish(state, admission, err)
            if isinstance(err, Exception):
                await abort(context, err)
            raise

    async def CountTokens(  # noqa: N802 - gRPC name
        self, request: pb.CountTokensRequest, context: Context
    ) -> pb.CountTokensResponse:
        try:
            key = self._pipeline.authenticate(call_info(context))
            check_model(key, request.model)
            count = self._count(request)
        except Exception as err:
            await abort(context, err)
        return pb.CountTokensResponse(tokens=count.tokens, exact=count.exact, tokenizer=count.tokenizer)

    async def ListModels(  # noqa: N802 - gRPC name
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        try:
            key = self._pipeline.authenticate(call_info(context))
        except Exception as err:
            await abort(context, err)
        infos = [
            pb.ModelInfo(
                id=t.model.name,
                provider=t.provider.name,
                provider_type=t.provider.config.type.value,
                upstream_model=t.model.upstream,
                context_window=t.model.context_window,
                max_output_tokens=t.model.max_output_tokens,
                input_cost_per_mtok=t.model.input_cost_per_mtok,
                output_cost_per_mtok=t.model.output_cost_per_mtok,
                capabilities=sorted(t.model.capabilities),
                simulated=t.provider.simulated,
            )
            for t in (self._pipeline.catalog().pool(name)[0] for name in self._pipeline.catalog().model_names())
            if key.may_call(t.model.name)
        ]
        infos += [
            pb.ModelInfo(
                id=route.name,
                is_route=True,
                route_strategy=route.strategy.value,
                route_targets=[t.model for t in route.targets] or [r.target for r in route.rules],
            )
            for route in self._pipeline.routes()
            if key.may_call(route.name)
        ]
        return pb.ListModelsResponse(models=infos)

    def _count(self, request: pb.CountTokensRequest) -> TokenCount:
        model = self._pipeline.catalog().primary(request.model).model
        counter = self._pipeline.counter
        if request.messages and request.text:
            raise InvalidRequest("set either messages or text, not both")
        if request.messages:
            return counter.count_chat(messages_from_proto(request.messages), model.upstream, model.tokenizer)
        if not request.text:
            raise InvalidRequest("nothing to count: set messages or text")
        self._check_size(len(request.text))
        return counter.count_text(request.text, model.upstream, model.tokenizer)

    def _chat_request(self, request: pb.ChatRequest) -> ChatRequest:
        chat = chat_request_from_proto(request)
        self._check_size(chat.text_chars)
        return chat

    def _check_size(self, chars: int) -> None:
        if chars > self._max_input_chars:
            raise InvalidRequest(
                f"the input has {chars} characters, over the gateway's limit of {self._max_input_chars}",
                reason="INPUT_TOO_LARGE",
            )
