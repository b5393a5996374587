"""Token counting as each provider bills it: the only Python importer of the token functions of gateway._core.

OpenAI models are counted exactly (cl100k_base / o200k_base, with the per-message framing OpenAI documents). Models
without a public tokenizer (Anthropic, Gemini, others) get a labelled estimate: an OpenAI encoding's count times a
per-model factor that starts from a family default and is corrected from the prompt tokens providers report back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway import _core
from gateway.chat import ChatRequest, Message

# Prefix of the provider's model id -> its encoding. Longest prefix wins (gpt-4o before gpt-4).
_EXACT_PREFIXES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            ("gpt-4o", "o200k_base"),
            ("chatgpt-4o", "o200k_base"),
            ("gpt-4.1", "o200k_base"),
            ("gpt-4.5", "o200k_base"),
            ("gpt-5", "o200k_base"),
            ("gpt-oss", "o200k_base"),
            ("o1", "o200k_base"),
            ("o3", "o200k_base"),
            ("o4", "o200k_base"),
            ("gpt-4", "cl100k_base"),
            ("gpt-3.5", "cl100k_base"),
            ("text-embedding-3", "cl100k_base"),
            ("text-embedding-ada-002", "cl100k_base"),
        ),
        key=lambda pair: -len(pair[0]),
    )
)
# Families without a public tokenizer: (prefix, encoding counted with, starting factor). Claude's tokenizer yields
# more tokens than cl100k_base on English text; Gemini's is close to o200k_base. Observed usage corrects both.
_ESTIMATED_FAMILIES: tuple[tuple[str, str, float], ...] = (
    ("claude", "cl100k_base", 1.15),
    ("gemini", "o200k_base", 1.0),
)
_UNKNOWN = ("o200k_base", 1.0)
# A high-detail 1024x1024 image as OpenAI bills it (85 base + 4 tiles x 170); image sizes are not decoded here, so a
# prompt with images is always an estimate.
IMAGE_TOKENS_ESTIMATE = 765
# How fast a model's estimate factor follows reported usage, and how far it may drift from 1.
_CORRECTION_ALPHA = 0.1
_FACTOR_BOUNDS = (0.5, 2.0)
# Above this many characters a count goes to a worker thread, so the event loop keeps serving (the Rust core runs
# without the GIL). Measured on 2 cores (benches/core/bench_tokens.py, group "chat count on the event loop"): a
# to_thread hand-off costs the loop ~25-30 µs of CPU and the caller ~35-50 µs of latency; counting mixed text inline
# blocks the loop ~3-4.5 µs per 1000 characters, so from 16k characters on the hand-off frees loop time.
OFF_LOOP_MIN_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class TokenCount:
    tokens: int
    exact: bool
    tokenizer: str
    """The encoding used, e.g. "o200k_base", or "estimate:cl100k_base" for an estimate."""


@dataclass(frozen=True, slots=True)
class _Scheme:
    encoding: str
    exact: bool
    per_message: int = 3
    per_name: int = 1
    reply: int = 3


class TokenCounter:
    def __init__(self) -> None:
        self._schemes: dict[tuple[str, str | None], _Scheme] = {}
        self._factors: dict[str, float] = {}

    def preload(self, models: Iterable[tuple[str, str | None]]) -> list[str]:
        """Loads now the vocabularies that (upstream model, declared tokenizer) pairs count with, rather than in the
        first call that counts with each (o200k_base ~35 ms and 17 MB resident, cl100k_base ~12 ms and 8 MB). A
        supervisor does, so that its forked workers share one copy instead of each loading its own; a single process
        does not, so that an idle one holds only what its calls have used. Returns the encodings loaded."""
        encodings = sorted({self._scheme(model, tokenizer).encoding for model, tokenizer in models})
        for encoding in encodings:
            _core.load_encoding(encoding)
        return encodings

    def count_text(self, text: str, model: str, tokenizer: str | None = None) -> TokenCount:
        scheme = self._scheme(model, tokenizer)
        tokens = _core.count_tokens(text, scheme.encoding)
        return self._result(tokens, scheme, model)

    def count_chat(self, messages: Sequence[Message], model: str, tokenizer: str | None = None) -> TokenCount:
        scheme = self._scheme(model, tokenizer)
        rows = [(m.role, m.name, _billed_text(m)) for m in messages]
        tokens = _core.count_chat_tokens(rows, scheme.encoding, scheme.per_message, scheme.per_name, scheme.reply)
        images = sum(1 for m in messages for p in m.parts if not isinstance(p, str))
        if images:
            return self._result(tokens + images * IMAGE_TOKENS_ESTIMATE, scheme, model, exact=False)
        return self._result(tokens, scheme, model)

    async def count_chat_async(
        self, messages: Sequence[Message], model: str, tokenizer: str | None = None
    ) -> TokenCount:
        """count_chat, off the event loop for very large inputs."""
        if sum(len(m.content) for m in messages) < OFF_LOOP_MIN_CHARS:
            return self.count_chat(messages, model, tokenizer)
        return await asyncio.to_thread(self.count_chat, messages, model, tokenizer)

    def is_exact(self, model: str, tokenizer: str | None = None) -> bool:
        """Whether the model's counts are exact (then reported usage has nothing to correct)."""
        return self._scheme(model, tokenizer).exact

    @staticmethod
    def upper_bound(request: ChatRequest) -> int:
        """A bound no count of the request's messages can exceed, for any model, computed without tokenizing: a token
        covers at least one UTF-8 byte (at most 4 per character), estimates are scaled by at most 2, and framing and
        images add a fixed amount. Lets the hot path skip counting when a prompt obviously fits a context window."""
        framing = 8 + 16 * len(request.messages) + IMAGE_TOKENS_ESTIMATE * request.images
        return 2 * (4 * request.text_chars + framing)

    def observe_usage(self, model: str, counted_prompt_tokens: int, reported_prompt_tokens: int) -> None:
        """Corrects an estimated model's factor from what its provider billed for a prompt we counted."""
        scheme = self._schemes.get((model, None))
        if scheme is None or scheme.exact or counted_prompt_tokens <= 0 or reported_prompt_tokens <= 0:
            return
        factor = self._factors.get(model, 1.0)
        implied = factor * reported_prompt_tokens / counted_prompt_tokens
        low, high = _FACTOR_BOUNDS
        updated = factor + _CORRECTION_ALPHA * (min(max(implied, low), high) - factor)
        self._factors[model] = updated

    def estimate_factor(self, model: str) -> float:
        """The current correction factor of an estimated model (1.0 for exact ones)."""
        return self._factors.get(model, 1.0)

    def _result(self, tokens: int, scheme: _Scheme, model: str, *, exact: bool = True) -> TokenCount:
        if scheme.exact and exact:
            return TokenCount(tokens, True, scheme.encoding)
        factor = self._factors.get(model, 1.0)
        return TokenCount(round(tokens * factor), False, f"estimate:{scheme.encoding}")

    def _scheme(self, model: str, tokenizer: str | None) -> _Scheme:
        scheme = self._schemes.get((model, tokenizer))
        if scheme is None:
            scheme = self._schemes[(model, tokenizer)] = self._make_scheme(model, tokenizer)
        return scheme

    def _make_scheme(self, model: str, tokenizer: str | None) -> _Scheme:
        if tokenizer is not None:
            # The operator declared the model's encoding in the config: counted exactly with it.
            return _Scheme(tokenizer, exact=True)
        name = model.lower()
        if name.startswith("gpt-3.5-turbo-0301"):
            return _Scheme("cl100k_base", exact=True, per_message=4, per_name=-1)
        for prefix, encoding in _EXACT_PREFIXES:
            if name.startswith(prefix):
                return _Scheme(encoding, exact=True)
        for prefix, encoding, factor in _ESTIMATED_FAMILIES:
            if name.startswith(prefix):
                self._factors.setdefault(model, factor)
                return _Scheme(encoding, exact=False)
        self._factors.setdefault(model, _UNKNOWN[1])
        return _Scheme(_UNKNOWN[0], exact=False)


def _billed_text(message: Message) -> str:
    """Everything of a message that the provider tokenizes as text: content, text parts, tool calls and their ids."""
    text = message.text()
    if message.tool_calls:
        text += "".join(f"{c.name}{c.arguments_json}" for c in message.tool_calls)
    if message.tool_call_id:
        text += message.tool_call_id
    return text
