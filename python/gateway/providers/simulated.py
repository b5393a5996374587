"""A built-in provider for the out-of-the-box default and demos. It is SIMULATED: no model is called.

The answer is deterministic text derived from the prompt; usage is counted with the real tokenizer; the time to first
token, the per-token delay and an error rate come from the config, so routing and resilience can be exercised with no
API key. A quality table in the config makes some answers good and others bad, drawn per (model, kind of prompt), so
that learning from feedback can be exercised too. Every answer is labelled as simulated (ChatResponse.simulated,
ModelInfo.simulated, the text's prefix).

With `simulation.batch_delay_s` set it has a batch API (gateway/batches/adapters/simulated.py), which ends a batch
that long after it was created, each item answered as a chat call would be. Its batches are kept in the gateway's
state folder (simulated_batches.py), where every process serving from it finds them, as a real provider's are.

Embeddings are unit vectors drawn from a generator seeded with a hash of the model and the input: the same text
always gets the same vector, different texts get unrelated ones. They carry no meaning (two paraphrases are not
close), and EmbedResponse.simulated says so.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
import random
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.chat import ChatDelta, ChatRequest, ChatResult, ToolCall, ToolCallDelta, Usage
from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.embeddings import EmbedRequest, EmbedResult, Vector, vector
from gateway.errors import ProviderError
from gateway.providers.base import Provider, UpstreamCall
from gateway.providers.simulated_batches import SIMULATED_BATCHES, SimulatedBatchBook
from gateway.tokens import TokenCounter

# Common English words, each a single token with its leading space in cl100k_base and o200k_base.
_WORDS = [
    "the",
    "model",
    "answer",
    "is",
    "simulated",
    "and",
    "this",
    "text",
    "was",
    "made",
    "from",
    "your",
    "prompt",
    "so",
    "it",
    "stays",
    "the",
    "same",
    "for",
    "the",
    "same",
    "request",
    "while",
    "a",
    "real",
    "provider",
    "would",
    "write",
    "something",
    "useful",
    "here",
    "about",
    "data",
    "time",
    "people",
    "work",
    "system",
    "value",
    "first",
    "new",
    "good",
    "way",
    "use",
    "state",
    "part",
    "place",
    "case",
    "point",
    "group",
    "number",
    "world",
    "fact",
    "example",
    "result",
]


class SimulatedProvider(Provider):
    simulated = True
    embed_batch = 2048

    def __init__(self, config: ProviderConfig, state_dir: Path) -> None:
        super().__init__(config)
        self._sim = config.simulation
        self._counter = TokenCounter()
        # One seeded generator for every draw (failures, good answers): a seeded run repeats itself.
        self._draws = random.Random(self._sim.seed)
        self.batches = SimulatedBatchBook(state_dir / SIMULATED_BATCHES, config.name)
        """The batches its batch API made, as the provider's servers would keep them."""

    @property
    def batch_delay_s(self) -> float | None:
        """Unset: no batch API."""
        return self._sim.batch_delay_s

    def _maybe_fail(self) -> None:
        if self._sim.error_rate and self._draws.random() < self._sim.error_rate:
            raise ProviderError(
                f"simulated provider {self.name!r} failed on purpose (error_rate={self._sim.error_rate})",
                provider=self.name,
                http_status=503,
                reason="SIMULATED_FAILURE",
            )

    def _answer(self, request: ChatRequest, model: ModelConfig) -> tuple[str, str, Usage, ToolCall | None]:
        self._maybe_fail()
        prompt = "\n".join(f"{m.role}:{m.text()}" for m in request.messages)
        digest = hashlib.sha256(prompt.encode()).digest()
        rng = random.Random(digest)
        prefix = f"[simulated {model.name}{self._verdict(request, model)}]"
        natural = rng.randint(max(1, self._sim.max_answer_tokens // 2), self._sim.max_answer_tokens)
        budget = request.max_tokens if request.max_tokens is not None else model.max_output_tokens
        words = [prefix, *(rng.choice(_WORDS) for _ in range(natural))]
        text = " ".join(words)
        completion = self._counter.count_text(text, model.upstream, model.tokenizer).tokens
        finish = "stop"
        while completion > budget and len(words) > 1:
            # Each word is one token, so this ends within a few steps past the prefix.
            words = words[: max(1, len(words) - (completion - budget))]
            text = " ".join(words)
            completion = self._counter.count_text(text, model.upstream, model.tokenizer).tokens
            finish = "length"
        tool_call = _forced_tool_call(request, digest)
        if tool_call is not None:
            finish = "tool_calls"
        prompt_tokens = self._counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens
        return text, finish, Usage(prompt_tokens, completion), tool_call

    def _verdict(self, request: ChatRequest, model: ModelConfig) -> str:
        """': good answer' or ': bad answer' when a row of the quality table covers the prompt and the model."""
        last = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        for row in self._sim.quality:
            if _regex(row.prompt_regex).search(last) is not None:
                good = row.good.get(model.name)
                if good is None:
                    return ""
                return ": good answer" if self._draws.random() < good else ": bad answer"
        return ""

    async def chat(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> ChatResult:
        result = self.result(request, model, f"sim-{call.request_id}")
        assert result.usage is not None
        delay = self._sim.time_to_first_token_ms + self._sim.per_token_ms * result.usage.completion_tokens
        if delay:
            await self._sleep(delay / 1000, call)
        return result

    def result(self, request: ChatRequest, model: ModelConfig, upstream_id: str) -> ChatResult:
        """The answer, at once (the batch API's answers take no per-call latency); ProviderError per error_rate."""
        text, finish, usage, tool_call = self._answer(request, model)
        return ChatResult(
            upstream_id=upstream_id,
            upstream_model=model.upstream,
            text=text,
            finish_reason=finish,
            usage=usage,
            tool_calls=[tool_call] if tool_call else [],
        )

    async def stream(self, request: ChatRequest, model: ModelConfig, call: UpstreamCall) -> AsyncIterator[ChatDelta]:
        text, finish, usage, tool_call = self._answer(request, model)
        started = time.monotonic()
        if self._sim.time_to_first_token_ms:
            await self._sleep(self._sim.time_to_first_token_ms / 1000, call, started)
        words = text.split(" ")
        for i, word in enumerate(words):
            if i and self._sim.per_token_ms:
                await self._sleep(self._sim.per_token_ms / 1000, call, started)
            yield ChatDelta(text=word if i == 0 else " " + word, upstream_model=model.upstream)
        if tool_call is not None:
            yield ChatDelta(tool_calls=[ToolCallDelta(0, tool_call.id, tool_call.name, tool_call.arguments_json)])
        yield ChatDelta(finish_reason=finish, usage=usage)

    async def embed(self, request: EmbedRequest, model: ModelConfig, call: UpstreamCall) -> EmbedResult:
        self._maybe_fail()
        length = request.dimensions or model.dimensions or 0
        if self._sim.time_to_first_token_ms:
            await self._sleep(self._sim.time_to_first_token_ms / 1000, call)
        tokens = sum(self._counter.count_text(text, model.upstream, model.tokenizer).tokens for text in request.inputs)
        return EmbedResult(
            upstream_model=model.upstream,
            vectors=[_unit_vector(f"{model.name}\x00{text}", length) for text in request.inputs],
            prompt_tokens=tokens,
        )

    async def _sleep(self, seconds: float, call: UpstreamCall, started: float | None = None) -> None:
        """Simulated latency, bounded like a real upstream call by the time the caller has left."""
        if call.timeout_s is not None:
            left = call.timeout_s - (time.monotonic() - started if started is not None else 0.0)
            if seconds > left:
                await asyncio.sleep(max(left, 0.0))
                raise ProviderError(
                    f"simulated provider {self.name!r} timed out", provider=self.name, reason="UPSTREAM_TIMEOUT"
                )
        await asyncio.sleep(seconds)


@functools.cache
def _regex(pattern: str) -> re.Pattern[str]:
    """Patterns come from the config, so the cache is bounded."""
    return re.compile(pattern)


def _forced_tool_call(request: ChatRequest, digest: bytes) -> ToolCall | None:
    """When the caller requires a tool call, the simulation makes one (to the named tool, else the first)."""
    if not request.tools or request.tool_choice in ("", "auto", "none"):
        return None
    name = request.tool_choice if request.tool_choice != "required" else request.tools[0].name
    return ToolCall(id=f"call_{digest[:6].hex()}", name=name, arguments_json="{}")


def _unit_vector(seed: str, length: int) -> Vector:
    """A deterministic direction: normal draws from a generator seeded with the text's hash, scaled to length 1."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    values = [rng.gauss(0.0, 1.0) for _ in range(length)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return vector([v / norm for v in values])
