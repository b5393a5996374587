"""A small typed client over the generated stubs, async and sync.

async with GatewayClient("127.0.0.1:50051", api_key) as client:
    answer = await client.chat("sim-fast", "Hello!")
    async for chunk in client.chat_stream("sim-fast", "Tell me more"):
        print(chunk.delta, end="")

The two clients share what they send (`_Calls`: the key's metadata, and the request messages that take more than a
constructor), not the sending: a blocking stub returns the answer and an aio stub an awaitable of it, which one typed
method cannot be, so each client's method is the call of its own stub.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc, insights_pb2, insights_pb2_grpc

MessagesLike = str | Sequence[pb.Message | tuple[str, str]]
"""A prompt (one user message), or messages as protobuf or (role, content) pairs."""
Metadata = tuple[tuple[str, str], ...]


def build_chat_request(model: str, messages: MessagesLike, **params: Any) -> pb.ChatRequest:
    """A ChatRequest from a prompt or messages plus any ChatRequest field as a keyword (max_tokens=, metadata=...)."""
    if isinstance(messages, str):
        proto_messages = [pb.Message(role="user", content=messages)]
    else:
        proto_messages = [m if isinstance(m, pb.Message) else pb.Message(role=m[0], content=m[1]) for m in messages]
    return pb.ChatRequest(model=model, messages=proto_messages, **params)


def _channel_args(
    address: str, secure: bool, root_certificates: bytes | None
) -> tuple[str, grpc.ChannelCredentials | None]:
    if secure or root_certificates is not None:
        return address, grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return address, None


class _Calls:
    """What both clients send: the key's metadata and each call's request message."""

    def __init__(self, api_key: str) -> None:
        self._metadata: Metadata = (("authorization", f"Bearer {api_key}"),)

    def _chat_metadata(self, deferred_id: str) -> Metadata:
        """Chat's metadata: the key's, and the caller's id of a deferred call when it gives one."""
        return (*self._metadata, ("x-deferred-id", deferred_id)) if deferred_id else self._metadata

    @staticmethod
    def _count_tokens_request(model: str, text: str, messages: MessagesLike) -> pb.CountTokensRequest:
        request = pb.CountTokensRequest(model=model, text=text)
        if messages:
            request.messages.extend(build_chat_request(model, messages).messages)
        return request


class GatewayClient(_Calls):
    """Async client. One instance shares one HTTP/2 channel across concurrent calls."""

    def __init__(
        self, address: str, api_key: str, *, secure: bool = False, root_certificates: bytes | None = None
    ) -> None:
        super().__init__(api_key)
        target, credentials = _channel_args(address, secure, root_certificates)
        self._channel = (
            grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
        )
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._insights = insights_pb2_grpc.InsightsStub(self._channel)

    async def chat(
        self,
        model: str,
        messages: MessagesLike,
        *,
        timeout: float | None = None,
        deferred_id: str = "",
        **params: Any,
    ) -> pb.ChatResponse:
        """`deferred_id`: with defer_up_to_s, the caller's id for the call (GetDeferred fetches it by this id)."""
        response: pb.ChatResponse = await self._stub.Chat(
            build_chat_request(model, messages, **params), metadata=self._chat_metadata(deferred_id), timeout=timeout
        )
        return response

    async def chat_stream(
        self, model: str, messages: MessagesLike, *, timeout: float | None = None, **params: Any
    ) -> AsyncIterator[pb.ChatChunk]:
        request = build_chat_request(model, messages, **params)
        call = self._stub.ChatStream(request, metadata=self._metadata, timeout=timeout)
        try:
            async for chunk in call:
                yield chunk
        finally:
            call.cancel()

    async def get_deferred(self, request_id: str, *, timeout: float | None = None) -> pb.GetDeferredResponse:
        """A deferred call's state, and its answer once it came (chat(..., defer_up_to_s=...))."""
        response: pb.GetDeferredResponse = await self._stub.GetDeferred(
            pb.GetDeferredRequest(request_id=request_id), metadata=self._metadata, timeout=timeout
        )
        return response

    async def count_tokens(
        self, model: str, *, text: str = "", messages: MessagesLike = (), timeout: float | None = None
    ) -> pb.CountTokensResponse:
        response: pb.CountTokensResponse = await self._stub.CountTokens(
            self._count_tokens_request(model, text, messages), metadata=self._metadata, timeout=timeout
        )
        return response

    async def embed(
        self, model: str, inputs: list[str], *, timeout: float | None = None, **params: Any
    ) -> pb.EmbedResponse:
        request = pb.EmbedRequest(model=model, inputs=inputs, **params)
        response: pb.EmbedResponse = await self._stub.Embed(request, metadata=self._metadata, timeout=timeout)
        return response

    async def list_models(self, *, timeout: float | None = None) -> list[pb.ModelInfo]:
        response: pb.ListModelsResponse = await self._stub.ListModels(
            pb.ListModelsRequest(), metadata=self._metadata, timeout=timeout
        )
        return list(response.models)

    async def feedback(
        self,
        request_id: str,
        ratings: Sequence[insights_pb2.MetricRating],
        *,
        comment: str = "",
        source: insights_pb2.FeedbackSource.ValueType = insights_pb2.FEEDBACK_SOURCE_UNSPECIFIED,
        timeout: float | None = None,
    ) -> insights_pb2.FeedbackResponse:
        """Rates a call this key made (ChatResponse.id) on metrics the gateway's config declares."""
        request = insights_pb2.FeedbackRequest(request_id=request_id, ratings=ratings, comment=comment, source=source)
        response: insights_pb2.FeedbackResponse = await self._insights.Feedback(
            request, metadata=self._metadata, timeout=timeout
        )
        return response

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class SyncGatewayClient(_Calls):
    """Blocking client, for scripts and the CLI."""

    def __init__(
        self, address: str, api_key: str, *, secure: bool = False, root_certificates: bytes | None = None
    ) -> None:
        super().__init__(api_key)
        target, credentials = _channel_args(address, secure, root_certificates)
        self._channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        self._stub = gateway_pb2_grpc.GatewayStub(self._channel)
        self._insights = insights_pb2_grpc.InsightsStub(self._channel)

    def chat(
        self,
        model: str,
        messages: MessagesLike,
        *,
        timeout: float | None = None,
        deferred_id: str = "",
        **params: Any,
    ) -> pb.ChatResponse:
        """`deferred_id`: with defer_up_to_s, the caller's id for the call (GetDeferred fetches it by this id)."""
        response: pb.ChatResponse = self._stub.Chat(
            build_chat_request(model, messages, **params), metadata=self._chat_metadata(deferred_id), timeout=timeout
        )
        return response

    def chat_stream(
        self, model: str, messages: MessagesLike, *, timeout: float | None = None, **params: Any
    ) -> Iterator[pb.ChatChunk]:
        call = self._stub.ChatStream(
            build_chat_request(model, messages, **params), metadata=self._metadata, timeout=timeout
        )
        try:
            yield from call
        finally:
            call.cancel()

    def get_deferred(self, request_id: str, *, timeout: float | None = None) -> pb.GetDeferredResponse:
        """A deferred call's state, and its answer once it came (chat(..., defer_up_to_s=...))."""
        response: pb.GetDeferredResponse = self._stub.GetDeferred(
            pb.GetDeferredRequest(request_id=request_id), metadata=self._metadata, timeout=timeout
        )
        return response

    def count_tokens(
        self, model: str, *, text: str = "", messages: MessagesLike = (), timeout: float | None = None
    ) -> pb.CountTokensResponse:
        response: pb.CountTokensResponse = self._stub.CountTokens(
            self._count_tokens_request(model, text, messages), metadata=self._metadata, timeout=timeout
        )
        return response

    def embed(self, model: str, inputs: list[str], *, timeout: float | None = None, **params: Any) -> pb.EmbedResponse:
        request = pb.EmbedRequest(model=model, inputs=inputs, **params)
        response: pb.EmbedResponse = self._stub.Embed(request, metadata=self._metadata, timeout=timeout)
        return response

    def list_models(self, *, timeout: float | None = None) -> list[pb.ModelInfo]:
        response: pb.ListModelsResponse = self._stub.ListModels(
            pb.ListModelsRequest(), metadata=self._metadata, timeout=timeout
        )
        return list(response.models)

    def feedback(
        self,
        request_id: str,
        ratings: Sequence[insights_pb2.MetricRating],
        *,
        comment: str = "",
        source: insights_pb2.FeedbackSource.ValueType = insights_pb2.FEEDBACK_SOURCE_UNSPECIFIED,
        timeout: float | None = None,
    ) -> insights_pb2.FeedbackResponse:
        """Rates a call this key made (ChatResponse.id) on metrics the gateway's config declares."""
        request = insights_pb2.FeedbackRequest(request_id=request_id, ratings=ratings, comment=comment, source=source)
        response: insights_pb2.FeedbackResponse = self._insights.Feedback(
            request, metadata=self._metadata, timeout=timeout
        )
        return response

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
