"""What routing decisions look at in a request, computed once and lazily."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from gateway.chat import ChatRequest, Message
from gateway.config.schema import ModelConfig, ModelKind
from gateway.embeddings import EmbedRequest

if TYPE_CHECKING:
    from gateway.cache.service import Vector


@dataclass(frozen=True)
class RequestFeatures:
    """What routing reads about a request. Frozen: the route stage builds it whole; `fit` and the prompt counts are
    memos of what follows from it, filled as they are first asked for."""

    request: ChatRequest
    """The request as routing reads it (an embedding request as the chat request it resembles: see `as_chat`)."""
    team: str
    streaming: bool
    count_prompt: Callable[[ModelConfig], int]
    """Prompt tokens as the given model counts them (tokenizers differ between targets)."""
    prompt_bound: int
    """An upper bound on prompt_tokens for any model, known without tokenizing."""
    _counts: dict[tuple[str, str | None], int] = field(default_factory=dict)
    fit: dict[str, bool] = field(default_factory=dict)
    """Per target key, whether it can serve this request: memo of router.misfit, read by plan and executor."""
    kind: ModelKind = ModelKind.CHAT
    """The kind of model the call needs."""
    dimensions: int | None = None
    """Embeddings: the vector length asked for."""
    prompt_vector: Vector | None = None
    """The last user turn's embedding, when a learned route's cluster feature asked for it before routing (the
    semantic cache's lookup reuses it)."""
    at: float = field(default_factory=time.time)
    """Epoch seconds at which the call runs: the prices then in force are those the cost strategy compares."""

    def prompt_tokens(self, model: ModelConfig) -> int:
        key = (model.upstream, model.tokenizer)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = self.count_prompt(model)
        return count

    @cached_property
    def prompt_text(self) -> str:
        """The caller's words (user and tool turns), lower-cased for keyword rules."""
        return "\n".join(m.text() for m in self.request.messages if m.role in ("user", "tool")).lower()

    @property
    def has_images(self) -> bool:
        return self.request.images > 0

    @property
    def has_tools(self) -> bool:
        return bool(self.request.tools)


def as_chat(request: EmbedRequest) -> ChatRequest:
    """An embedding request as routing reads it: one user turn per input, so that rules (keywords, regex, token
    counts, metadata, team), sticky arms and residency treat the texts to embed as they treat a prompt."""
    return ChatRequest(
        request.model,
        [Message("user", text) for text in request.inputs],
        user=request.user,
        metadata=request.metadata,
        text_chars=request.text_chars,
    )
