"""gateway.tokens: exact counts for OpenAI models, labelled estimates elsewhere, corrected from reported usage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import pytest

import gateway.tokens
from gateway.chat import ImagePart, Message, ToolCall
from gateway.tokens import IMAGE_TOKENS_ESTIMATE, TokenCounter
from tests.core.reference import reference_encoding

T = TypeVar("T")


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
    ],
)
def test_openai_models_are_counted_exactly(model: str, encoding: str) -> None:
    count = TokenCounter().count_text("The quick brown fox jumps over the lazy dog.", model)
    assert count.exact
    assert count.tokenizer == encoding
    assert count.tokens == len(
        reference_encoding(encoding).encode_ordinary("The quick brown fox jumps over the lazy dog.")
    )


def test_chat_count_includes_framing_names_and_tool_calls() -> None:
    counter = TokenCounter()
    plain = [Message("user", "hello world")]
    assert counter.count_chat(plain, "gpt-4o").tokens == 3 + 1 + 2 + 3  # framing + "user" + text + priming
    named = [Message("user", "hello world", name="ann")]
    assert counter.count_chat(named, "gpt-4o").tokens == 9 + 1 + 1
    call = [Message("assistant", "", tool_calls=(ToolCall("call_1", "lookup", '{"q": "x"}'),))]
    assert counter.count_chat(call, "gpt-4o").tokens > counter.count_chat([Message("assistant", "")], "gpt-4o").tokens
    old = counter.count_chat(named, "gpt-3.5-turbo-0301")
    assert old.tokens == 4 + 1 + 2 + (1 - 1) + 3


def test_images_make_an_estimate() -> None:
    counter = TokenCounter()
    text_only = counter.count_chat([Message("user", "look")], "gpt-4o")
    with_image = counter.count_chat([Message("user", "look", parts=(ImagePart(url="https://x/y.png"),))], "gpt-4o")
    assert not with_image.exact
    assert with_image.tokens == text_only.tokens + IMAGE_TOKENS_ESTIMATE


@pytest.mark.parametrize(
    ("model", "tokenizer"),
    [
        ("claude-3-5-haiku-latest", "estimate:cl100k_base"),
        ("gemini-2.0-flash", "estimate:o200k_base"),
        ("llama3", "estimate:o200k_base"),
    ],
)
def test_other_models_are_labelled_estimates(model: str, tokenizer: str) -> None:
    count = TokenCounter().count_text("hello world", model)
    assert not count.exact
    assert count.tokenizer == tokenizer


def test_config_tokenizer_overrides_the_map() -> None:
    count = TokenCounter().count_text("hello world", "my-vllm-model", "cl100k_base")
    assert count.exact
    assert count.tokenizer == "cl100k_base"


def test_estimates_converge_on_reported_usage() -> None:
    counter = TokenCounter()
    messages = [Message("user", "Explain the difference between TCP and UDP in a few sentences. " * 5)]
    model = "claude-3-5-haiku-latest"
    for _ in range(60):
        counted = counter.count_chat(messages, model).tokens
        truth = round(counted / counter.estimate_factor(model) * 1.3)  # the provider bills 1.3x our raw count
        counter.observe_usage(model, counted, truth)
    final = counter.count_chat(messages, model).tokens
    assert abs(final - truth) / truth < 0.02
    exact = TokenCounter()
    before = exact.count_chat(messages, "gpt-4o").tokens
    exact.observe_usage("gpt-4o", before, before * 2)
    assert exact.count_chat(messages, "gpt-4o").tokens == before, "exact counts are never 'corrected'"


def test_correction_is_bounded() -> None:
    counter = TokenCounter()
    counter.count_text("x", "gemini-2.0-flash")
    for _ in range(200):
        counter.observe_usage("gemini-2.0-flash", 10, 10_000)
    assert counter.estimate_factor("gemini-2.0-flash") <= 2.0


async def test_async_count_matches() -> None:
    counter = TokenCounter()
    big = [Message("user", "word " * 50_000)]
    assert (await counter.count_chat_async(big, "gpt-4o")).tokens == counter.count_chat(big, "gpt-4o").tokens


async def test_only_large_chats_leave_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    handed_off: list[int] = []
    real_to_thread = asyncio.to_thread

    async def recording_to_thread(func: Callable[..., T], /, *args: object) -> T:
        handed_off.append(len(args))
        return await real_to_thread(func, *args)

    monkeypatch.setattr(gateway.tokens.asyncio, "to_thread", recording_to_thread)
    counter = TokenCounter()
    small = [Message("user", "x" * (gateway.tokens.OFF_LOOP_MIN_CHARS - 1))]
    large = [Message("user", "x" * gateway.tokens.OFF_LOOP_MIN_CHARS)]
    assert (await counter.count_chat_async(small, "gpt-4o")) == counter.count_chat(small, "gpt-4o")
    assert handed_off == []
    assert (await counter.count_chat_async(large, "gpt-4o")) == counter.count_chat(large, "gpt-4o")
    assert handed_off == [3]


def test_preload_loads_only_the_encodings_the_models_count_with() -> None:
    counter = TokenCounter()
    assert counter.preload([("gpt-4o-mini", None), ("my-llama", "o200k_base"), ("claude-haiku", None)]) == [
        "cl100k_base",
        "o200k_base",
    ]
    assert counter.preload([("gpt-4o", None), ("gemini-flash", None)]) == ["o200k_base"]
    assert counter.preload([]) == []
