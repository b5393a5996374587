"""Token counting: gateway._core against tiktoken (same vocabulary, loaded offline) in the same run.

pytest benches/core/bench_tokens.py --benchmark-enable
"""

from __future__ import annotations

import asyncio
import random
import sysconfig
import time
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway import _core
from tests.core.reference import reference_encoding


def _corpus(size: int = 1_000_000) -> str:
    """~1 MB of mixed text: English prose, code, numbers, whitespace runs, and some non-Latin scripts and emoji."""
    rng = random.Random(42)
    words = [
        "the",
        "gateway",
        "routes",
        "each",
        "request",
        "to",
        "a",
        "provider",
        "and",
        "counts",
        "tokens",
        "before",
        "it",
        "sends",
        "the",
        "prompt",
        "upstream",
        "while",
        "budgets",
        "rate",
        "limits",
        "and",
        "caches",
        "keep",
        "costs",
        "predictable",
        "for",
        "every",
        "team",
    ]
    pieces = [
        lambda: " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))) + ". ",
        lambda: "def handler(request):\n    return {'status': 200, 'items': [i * 2 for i in range(10)]}\n",
        lambda: (
            f"order {rng.randint(10_000, 99_999)} costs ${rng.random() * 1000:.2f} "
            f"on 2026-11-{rng.randint(1, 28):02d}\n"
        ),
        lambda: "    " * rng.randint(1, 8) + "\n",
        lambda: "日本語のテキストと中文文本 한국어 텍스트 ",
        lambda: "emoji 🙂👍🏽🚀 ",
    ]
    weights = [60, 12, 10, 8, 5, 5]
    out: list[str] = []
    total = 0
    while total < size:
        piece = rng.choices(pieces, weights)[0]()
        out.append(piece)
        total += len(piece.encode())
    return "".join(out)


CORPUS = _corpus()
MEGABYTES = len(CORPUS.encode()) / 1e6


def _record_throughput(benchmark: BenchmarkFixture) -> None:
    if benchmark.stats is not None:  # None when run with --benchmark-disable, as a plain test
        benchmark.extra_info["MB/s"] = round(MEGABYTES / benchmark.stats["median"], 1)


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("implementation", ["gateway._core.count_tokens", "tiktoken encode_ordinary"])
def test_count_one_thread(benchmark: BenchmarkFixture, encoding: str, implementation: str) -> None:
    benchmark.group = f"count ~1 MB, one thread, {encoding}"
    reference = reference_encoding(encoding)
    if implementation.startswith("gateway"):
        count = benchmark.pedantic(_core.count_tokens, args=(CORPUS, encoding), rounds=5, warmup_rounds=1)
    else:
        count = len(benchmark.pedantic(reference.encode_ordinary, args=(CORPUS,), rounds=5, warmup_rounds=1))
    assert count == len(reference.encode_ordinary(CORPUS))
    _record_throughput(benchmark)


@pytest.mark.parametrize("implementation", ["gateway._core.count_tokens_batch", "tiktoken encode_ordinary_batch"])
def test_count_batch(benchmark: BenchmarkFixture, implementation: str) -> None:
    benchmark.group = "count a batch of 64 texts (~1 MB), all threads, o200k_base"
    size = len(CORPUS) // 64 + 1
    texts = [CORPUS[i * size : (i + 1) * size] for i in range(64)]
    reference = reference_encoding("o200k_base")
    if implementation.startswith("gateway"):
        benchmark.pedantic(_core.count_tokens_batch, args=(texts, "o200k_base"), rounds=5, warmup_rounds=1)
    else:
        benchmark.pedantic(reference.encode_ordinary_batch, args=(texts,), rounds=5, warmup_rounds=1)
    _record_throughput(benchmark)


@pytest.mark.parametrize("implementation", ["gateway._core.count_tokens", "tiktoken encode_ordinary"])
def test_count_short_prompt(benchmark: BenchmarkFixture, implementation: str) -> None:
    """A typical chat turn: the per-call cost, FFI included."""
    benchmark.group = "count a 60-word prompt, o200k_base"
    prompt = " ".join(CORPUS.split()[:60])
    reference = reference_encoding("o200k_base")
    if implementation.startswith("gateway"):
        benchmark(_core.count_tokens, prompt, "o200k_base")
    else:
        benchmark(reference.encode_ordinary, prompt)


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("implementation", ["gateway._core.encode", "tiktoken encode_ordinary"])
def test_encode_one_thread(benchmark: BenchmarkFixture, encoding: str, implementation: str) -> None:
    """Ids, not just the count: the list of ints crosses the boundary."""
    benchmark.group = f"encode ~1 MB, one thread, {encoding}"
    reference = reference_encoding(encoding)
    if implementation.startswith("gateway"):
        ids = benchmark.pedantic(_core.encode, args=(CORPUS, encoding), rounds=5, warmup_rounds=1)
    else:
        ids = benchmark.pedantic(reference.encode_ordinary, args=(CORPUS,), rounds=5, warmup_rounds=1)
    assert ids == reference.encode_ordinary(CORPUS)
    _record_throughput(benchmark)


# gateway.tokens.OFF_LOOP_MIN_CHARS: a count of this many characters of mixed text, inline on the event loop against
# a hand-off to a worker thread. The figure that matters for the loop is its own CPU time per call (extra_info).
_ASYNC_CHARS = 16_384


@pytest.mark.parametrize("mode", ["inline on the loop", "asyncio.to_thread"])
def test_chat_async_threshold(benchmark: BenchmarkFixture, mode: str) -> None:
    benchmark.group = f"count {_ASYNC_CHARS} chars from the event loop, o200k_base"
    text = CORPUS[:_ASYNC_CHARS]
    loop = asyncio.new_event_loop()

    async def inline() -> int:
        return _core.count_tokens(text, "o200k_base")

    async def off_loop() -> int:
        return await asyncio.to_thread(_core.count_tokens, text, "o200k_base")

    call = inline if mode.startswith("inline") else off_loop
    loop_cpu: list[float] = []

    def run() -> int:
        start = time.thread_time()
        result = loop.run_until_complete(call())
        loop_cpu.append(time.thread_time() - start)
        return result

    try:
        assert benchmark(run) == len(reference_encoding("o200k_base").encode_ordinary(text))
    finally:
        loop.close()
    loop_cpu.sort()
    benchmark.extra_info["loop CPU µs (median)"] = round(loop_cpu[len(loop_cpu) // 2] * 1e6, 1)


def _source_corpus(size: int = 1_000_000) -> str:
    """~1 MB of real text with a long-tailed vocabulary: the interpreter's own standard library (code, docstrings,
    comments, some non-ASCII), in sorted file order so every run on one Python version reads the same bytes."""
    out: list[str] = []
    total = 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        out.append(text)
        total += len(text.encode())
        if total >= size:
            break
    return "".join(out)


SOURCE = _source_corpus()


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("implementation", ["gateway._core.count_tokens", "tiktoken encode_ordinary"])
def test_count_source_one_thread(benchmark: BenchmarkFixture, encoding: str, implementation: str) -> None:
    benchmark.group = f"count ~1 MB of stdlib source, one thread, {encoding}"
    reference = reference_encoding(encoding)
    if implementation.startswith("gateway"):
        count = benchmark.pedantic(_core.count_tokens, args=(SOURCE, encoding), rounds=10, warmup_rounds=3)
    else:
        count = len(benchmark.pedantic(reference.encode_ordinary, args=(SOURCE,), rounds=10, warmup_rounds=3))
    assert count == len(reference.encode_ordinary(SOURCE))
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(len(SOURCE.encode()) / 1e6 / benchmark.stats["median"], 1)
