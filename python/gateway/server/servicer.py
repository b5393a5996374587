"""The Gateway service: thin translation between protobuf and the pipeline, as TGI's servicers are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from gateway.chat import ChatRequest, ChatResult
from gateway.errors import InvalidRequest
from gateway.pipeline import CallInfo, CallKind, CallScope, Pipeline, deadline_from
from gateway.policy.access import check_model
from gateway.policy.keyring import KeyRing
from gateway.request_rules import check_size
from gateway.server.convert import (
    cache_info_to_proto,
    chat_request_from_proto,
    delta_tool_calls_to_proto,
    embed_request_from_proto,
    embeddings_to_proto,
    fill_message,
    fill_route,
    fill_usage,
    guardrails_to_proto,
    messages_from_proto,
)
from gateway.server.deferred import DeferredCalls
from gateway.server.errors import streaming, unary
from gateway.server.listing import visible_models
from gateway.tokens import TokenCount

Context = grpc.aio.ServicerContext[Any, Any]


def call_info(context: Context) -> CallInfo:
    return CallInfo(context.invocation_metadata(), deadline_from(context.time_remaining()), context.peer())


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    def __init__(self, pipeline: Pipeline, ring: KeyRing, max_input_chars: int, deferred: DeferredCalls) -> None:
        self._pipeline = pipeline
        self._ring = ring
        self._max_input_chars = max_input_chars
        self._deferred = deferred

    @unary
    async def Chat(self, request: pb.ChatRequest, context: Context) -> pb.ChatResponse:  # noqa: N802 - gRPC name
        if request.HasField("defer_up_to_s"):
            return await self._deferred.chat(request, self.chat_request(request), context)
        async with self._pipeline.call(call_info(context), CallKind.CHAT, "Chat", request.model) as scope:
            result = await scope.complete(self.chat_request(request))
        return chat_response(scope, result)

    @unary
    async def GetDeferred(  # noqa: N802 - gRPC name
        self, request: pb.GetDeferredRequest, context: Context
    ) -> pb.GetDeferredResponse:
        return await self._deferred.get(request.request_id, context)

    @streaming
    async def ChatStream(  # noqa: N802 - gRPC name
        self, request: pb.ChatRequest, context: Context
    ) -> AsyncIterator[pb.ChatChunk]:
        if request.HasField("defer_up_to_s"):
            raise InvalidRequest(
                "defer_up_to_s is for Chat: a stream starts at once; use Chat for a call that can wait",
                reason="BAD_DEFER",
                metadata={"param": "defer_up_to_s"},
            )
        async with self._pipeline.call(call_info(context), CallKind.STREAM, "ChatStream", request.model) as scope:
            call = scope.call
            request_id = call.request_id
            first = True
            async for delta in scope.stream(self.chat_request(request)):
                chunk = pb.ChatChunk(id=request_id, delta=delta.text)
                if delta.tool_calls:
                    chunk.tool_calls.extend(delta_tool_calls_to_proto(delta))
                if first:
                    _label(chunk, scope)
                    first = False
                yield chunk
        # The record is written (in strict mode, committed) before the final chunk leaves.
        chunk = pb.ChatChunk(id=request_id, finish_reason=call.answer.finish_reason)
        _fill_outcomes(chunk, scope)
        if first:
            _label(chunk, scope)
        yield chunk

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:  # noqa: N802 - gRPC name
        async with self._pipeline.call(call_info(context), CallKind.EMBED, "Embed", request.model) as scope:
            embed = embed_request_from_proto(request)
            self._check_size(embed.text_chars)
            embedded = await scope.embed(embed)
        call = scope.call
        answer, record = call.answer, call.record
        target = answer.target
        assert target is not None
        response = pb.EmbedResponse(
            id=record.request_id,
            model=target.model.name,
            provider=target.provider.name,
            upstream_model=answer.upstream_model,
            embeddings=embeddings_to_proto(embedded, embed.encoding),
            dimensions=len(embedded[0].vector),
            simulated=target.provider.simulated,
        )
        _fill_outcomes(response, scope)
        return response

    @unary
    async def CountTokens(  # noqa: N802 - gRPC name
        self, request: pb.CountTokensRequest, context: Context
    ) -> pb.CountTokensResponse:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        check_model(key, request.model)
        count = self._count(request)
        return pb.CountTokensResponse(tokens=count.tokens, exact=count.exact, tokenizer=count.tokenizer)

    @unary
    async def ListModels(  # noqa: N802 - gRPC name
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        key = self._ring.authenticate(context.invocation_metadata(), context.peer())
        infos = [
            pb.ModelInfo(
                id=m.id,
                provider=m.provider,
                provider_type=m.provider_type,
                upstream_model=m.upstream_model,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
                input_cost_per_mtok=m.input_cost_per_mtok,
                output_cost_per_mtok=m.output_cost_per_mtok,
                capabilities=m.capabilities,
                simulated=m.simulated,
                kind=m.kind,
                dimensions=m.dimensions,
                is_route=bool(m.route_strategy),
                route_strategy=m.route_strategy,
                route_targets=m.route_targets,
            )
            for m in visible_models(self._pipeline, key)
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

    def chat_request(self, request: pb.ChatRequest) -> ChatRequest:
        return chat_request(request, self._max_input_chars)

    def _check_size(self, chars: int) -> None:
        check_size(chars, self._max_input_chars)


def chat_request(request: pb.ChatRequest, max_input_chars: int) -> ChatRequest:
    """Chat's request, validated (a deferred call's too, when it is resumed from the database)."""
    chat = chat_request_from_proto(request)
    check_size(chat.text_chars, max_input_chars)
    return chat


def chat_response(scope: CallScope, result: ChatResult) -> pb.ChatResponse:
    """Chat's answer, as the caller gets it (or GetDeferred, for a deferred call)."""
    call = scope.call
    answer = call.answer
    target = answer.target
    assert target is not None
    response = pb.ChatResponse(
        id=call.record.request_id,
        model=target.model.name,
        provider=target.provider.name,
        finish_reason=result.finish_reason,
        upstream_model=result.upstream_model,
        simulated=target.provider.simulated,
    )
    fill_message(response.message, result)
    _fill_outcomes(response, scope)
    return response


def _fill_outcomes(message: pb.ChatResponse | pb.ChatChunk | pb.EmbedResponse, scope: CallScope) -> None:
    """A call's usage and route, and its guardrails' actions and the cache's answer when it has them, into its last
    message. Filled in place rather than passed to the constructor: a sub-message passed in is copied, and a None
    keyword still costs a field lookup (together ~2 µs of every answer)."""
    call = scope.call
    answer = call.answer
    assert answer.usage is not None
    assert call.plan is not None
    fill_usage(message.usage, answer.usage, answer.cost_usd)
    fill_route(message.route, call.plan, call.execution.attempts if call.execution is not None else [])
    guardrails = call.record.guardrails
    if guardrails:
        message.guardrails.extend(guardrails_to_proto(guardrails))
    if call.cache is not None:
        message.cache.CopyFrom(cache_info_to_proto(call.cache))


def _label(chunk: pb.ChatChunk, scope: CallScope) -> None:
    """The first chunk names who answers."""
    target = scope.call.answer.target
    assert target is not None
    chunk.model = target.model.name
    chunk.provider = target.provider.name
    chunk.simulated = target.provider.simulated
