"""The path of a chat call, composed in one place: authenticate -> validate -> route -> provider -> account.

Each stage is a small object with one job; later stages (guardrails, cache, budgets, audit) slot in here, so the
order of a call is readable in this file alone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from gateway.chat import ChatDelta, ChatRequest, ChatResult, Usage
from gateway.errors import DeadlineExceeded, InvalidRequest, ProviderError
from gateway.ledger.cost import cost_usd
from gateway.policy.auth import Authenticator, Identity
from gateway.providers.base import UpstreamCall
from gateway.routing.catalog import ModelCatalog, Target
from gateway.tokens import TokenCounter


@dataclass(slots=True)
class CallInfo:
    """What the transport knows about a call."""

    metadata: Iterable[tuple[str, str | bytes]] | None
    deadline: float | None
    """time.monotonic() at which the caller gives up; None without a deadline."""

    def time_left(self) -> float | None:
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the call's deadline passed before the provider answered")
        return left


@dataclass(slots=True)
class Admission:
    """A call that passed every check before the provider: who asked, what serves it, what it will cost at most."""

    request_id: str
    identity: Identity
    request: ChatRequest
    target: Target
    prompt_tokens: int


@dataclass(slots=True)
class Served:
    admission: Admission
    result: ChatResult
    usage: Usage
    cost_usd: float


class ChatPipeline:
    def __init__(self, authenticator: Authenticator, catalog: ModelCatalog, counter: TokenCounter) -> None:
        self._authenticator = authenticator
        self._catalog = catalog
        self._counter = counter

    def authenticate(self, call: CallInfo) -> Identity:
        return self._authenticator.authenticate(call.metadata)

    def admit(self, request: ChatRequest, call: CallInfo) -> Admission:
        identity = self._authenticator.authenticate(call.metadata)
        target = self._catalog.resolve(request.model)
        identity.check_model(request.model)
        model = target.model
        if request.max_tokens is not None and request.max_tokens > model.max_output_tokens:
            raise InvalidRequest(
                f"max_tokens {request.max_tokens} exceeds model {model.name!r}'s limit of {model.max_output_tokens}",
                reason="MAX_TOKENS_TOO_LARGE",
            )
        if request.tools and "tools" not in model.capabilities:
            raise InvalidRequest(f"model {model.name!r} does not support tools", reason="UNSUPPORTED_CAPABILITY")
        if "images" not in model.capabilities and any(m.has_images() for m in request.messages):
            raise InvalidRequest(f"model {model.name!r} does not accept images", reason="UNSUPPORTED_CAPABILITY")
        prompt = self._counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens
        reserved = request.max_tokens or 0
        if prompt + reserved > model.context_window:
            raise InvalidRequest(
                f"the prompt has {prompt} tokens and max_tokens asks for {reserved}, more than model "
                f"{model.name!r}'s context window of {model.context_window}: shorten the conversation",
                reason="CONTEXT_WINDOW_EXCEEDED",
                metadata={"prompt_tokens": str(prompt), "context_window": str(model.context_window)},
            )
        return Admission(secrets.token_hex(12), identity, request, target, prompt)

    async def chat(self, admission: Admission, call: CallInfo) -> Served:
        target = admission.target
        upstream = UpstreamCall(admission.request_id, call.time_left())
        try:
            result = await target.provider.chat(admission.request, target.model, upstream)
        except ProviderError as err:
            raise _deadline_or(err, call) from None
        usage = self._settle_usage(admission, result.usage, completion_text=result.text)
        return Served(admission, result, usage, cost_usd(usage, target.model))

    async def stream(self, admission: Admission, call: CallInfo) -> AsyncIterator[ChatDelta | Served]:
        """Yields the provider's deltas as they arrive, then one Served with the settled usage and cost."""
        target = admission.target
        upstream = UpstreamCall(admission.request_id, call.time_left())
        reported: Usage | None = None
        finish = ""
        upstream_model = ""
        completion_tokens = 0
        try:
            async for delta in target.provider.stream(admission.request, target.model, upstream):
                if delta.usage is not None:
                    reported = delta.usage
                if delta.finish_reason:
                    finish = delta.finish_reason
                if delta.upstream_model:
                    upstream_model = delta.upstream_model
                if delta.text and reported is None:
                    # Counted as it passes, so usage exists even when a server sends none; nothing is buffered.
                    completion_tokens += self._counter.count_text(
                        delta.text, target.model.upstream, target.model.tokenizer
                    ).tokens
                if delta.text or delta.tool_calls:
                    yield delta
        except ProviderError as err:
            raise _deadline_or(err, call) from None
        usage = self._settle_usage(admission, reported, completion_tokens=completion_tokens)
        result = ChatResult("", upstream_model or target.model.upstream, "", finish or "stop", usage)
        yield Served(admission, result, usage, cost_usd(usage, target.model))

    def _settle_usage(
        self, admission: Admission, reported: Usage | None, *, completion_text: str = "", completion_tokens: int = 0
    ) -> Usage:
        """The provider's own numbers when it reports them (and they teach the estimator); else the gateway's count."""
        model = admission.target.model
        if reported is not None:
            if reported.prompt_tokens:
                self._counter.observe_usage(model.upstream, admission.prompt_tokens, reported.prompt_tokens)
            return reported
        if completion_text:
            completion_tokens = self._counter.count_text(completion_text, model.upstream, model.tokenizer).tokens
        return Usage(admission.prompt_tokens, completion_tokens)

    def catalog(self) -> ModelCatalog:
        return self._catalog

    @property
    def counter(self) -> TokenCounter:
        return self._counter


def _deadline_or(err: ProviderError, call: CallInfo) -> ProviderError | DeadlineExceeded:
    if call.deadline is not None and err.reason == "UPSTREAM_TIMEOUT" and time.monotonic() >= call.deadline - 0.05:
        return DeadlineExceeded(f"provider {err.provider!r} did not answer before the call's deadline")
    return err
