"""Token counting: gateway._core against tiktoken (same vocabulary, loaded offline) in the same run.

pytest benches/core/bench_tokens.py --benchmark-enable
"""

from __future__ import annotations

import random

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
