"""The one small interface every provider adapter implements.

An adapter translates a domain ChatRequest into the provider's wire format, sends it, and parses the answer (whole or
streamed) back into domain objects, mapping the provider's failures to ProviderError. The pipeline never sees HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.chat import ChatDelta, ChatRequest, ChatResult
from gateway.config.schema import ModelConfig, ProviderConfig


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

    async def aclose(self) -> None:  # noqa: B027 - optional hook; providers without resources need not override it
        """Releases pooled connections."""
