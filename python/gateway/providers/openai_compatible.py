"""Any server speaking OpenAI's Chat Completions at its own base_url: vLLM, Ollama, Together, Groq, LM Studio...

Differences from api.openai.com, tolerated here:
- The API key is optional: without one, no Authorization header is sent.
- The output bound is sent as `max_tokens`, which every such server accepts (`max_completion_tokens` is not universal).
- Streams ask for usage with `stream_options.include_usage`. A server that does not send usage yields a final delta
  with usage None. A server that rejects `stream_options` with a 400 naming it gets the request again without it,
  once, before any delta was produced; the provider then stops sending it for the rest of its life.
- A stream that ends without `[DONE]` but after a finish_reason is complete; a non-streamed JSON answer to a stream
  request is passed on as one delta (both in the shared machinery).
- Embeddings are asked for as JSON numbers (`encoding_format: float`, the API's default): not every such server
  implements base64.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from gateway.chat import ChatDelta, ChatRequest
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.errors import ProviderError
from gateway.providers.base import UpstreamCall
from gateway.providers.openai import OpenAIProvider


class OpenAICompatibleProvider(OpenAIProvider):
    max_tokens_field = "max_tokens"
    embed_encoding = "float"
    # Servers differ: some ignore stream_options.include_usage, so their streams may end without usage.

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.stream_usage = True

    def auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def stream(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> AsyncIterator[ChatDelta]:
        upstream = self.build_request(request, model, stream=True)
        produced = False
        try:
            async for delta in self._stream(upstream, request, model, call):
                produced = True
                yield delta
        except ProviderError as exc:
            if produced or "stream_options" not in upstream.body or not _rejects_stream_options(exc):
                raise
            self.stream_usage = False
            del upstream.body["stream_options"]
        else:
            return
        async for delta in self._stream(upstream, request, model, call):
            yield delta


def _rejects_stream_options(exc: ProviderError) -> bool:
    return exc.http_status in (400, 422) and "stream_options" in exc.message
