"""The one small interface every provider adapter implements.

An adapter translates a domain ChatRequest into the provider's wire format, sends it, and parses the answer (whole or
streamed) back into domain objects, mapping the provider's failures to ProviderError. The pipeline never sees HTTP.

Embeddings are the same contract on a smaller surface: `embed` takes at most `embed_batch` inputs (the pipeline splits
larger requests and puts the vectors back in order) and returns one vector per input. An adapter for another
embedding API sets `embed_batch` to what one upstream request may carry (`embed_batch_for` when that depends on the
model, as with Bedrock's Titan and Cohere models) and implements `embed`; nothing else changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.chat import ChatDelta, ChatRequest, ChatResult
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.embeddings import EmbedRequest, EmbedResult
from gateway.errors import ErrorKind, ProviderError


@dataclass(slots=True)
class UpstreamCall:
    """Per-call facts an adapter needs besides the request itself."""

    request_id: str
    timeout_s: float | None = None
    """Seconds left before the caller's deadline; None when the caller set none (the provider's timeout_s applies)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra headers to forward upstream (e.g. W3C trace context)."""


class Provider(ABC):
    """A configured provider. One instance serves every model configured on it, concurrently."""

    simulated: bool = False
    embed_batch: int = 0
    """Inputs one upstream embedding request may carry; 0 for a provider that serves no embeddings."""
    accepts_passthrough: bool = False
    """Whether the provider takes OpenAI parameters the gateway does not model (ChatRequest.passthrough) as given."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name

    @abstractmethod
    async def chat(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> ChatResult:
        """The whole answer. Raises ProviderError on any upstream failure."""

    @abstractmethod
    def stream(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> AsyncIterator[ChatDelta]:
        """The answer as it arrives, never buffered whole. Closing the iterator early cancels the upstream request.
        Raises ProviderError, also mid-stream (e.g. a dropped connection)."""

    def embed_batch_for(self, model: ModelConfig) -> int:
        """Inputs one upstream embedding request to `model` may carry: `embed_batch`, unless the model's API takes
        fewer."""
        return self.embed_batch

    async def embed(self, request: EmbedRequest, model: ModelConfig, call: UpstreamCall) -> EmbedResult:
        """One vector per input of `request` (at most `embed_batch_for(model)`), in order. Raises ProviderError."""
        raise ProviderError(
            f"provider {self.name!r} serves no embeddings",
            provider=self.name,
            kind=ErrorKind.FAILED_PRECONDITION,
            reason="EMBEDDINGS_UNSUPPORTED",
            retryable=False,
        )

    async def aclose(self) -> None:  # noqa: B027 - optional hook; providers without resources need not override it
        """Releases pooled connections."""
