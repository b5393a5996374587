"""The semantic cache's cost: a miss end to end, the vector search at 100k entries, and verify alone, each group
with its reference in the same run.

    pytest benches/cache/bench_semantic.py --benchmark-enable --benchmark-columns=min,median,max -s

- miss: embed a 30-word prompt (MiniLM int8, 2 intra-op threads), search a 10k-entry VectorIndex (HNSW, flushed)
  for 3 candidates, and verify all 3: the index holds three near misses of the prompt (cosine 0.95+: another number,
  a negation, another version), so verify runs on each and turns each down, the worst case of a miss. References:
  the embedding alone, and the search alone.
- search at 100k x 384 random unit vectors (graph flushed): ours against numpy brute force. The first run builds
  the graph (minutes on 2 cores) and caches it under .benchmarks/ with the same name bench_vectors.py uses.
- verify alone on a pair of 30-word prompts: the asked prompt read afresh each call (as on the request path; the
  cached prompt's facts stay in the cache), both read afresh, and reading one prompt.

Each test prints p50/p99 from a separate timed loop (pytest-benchmark reports min/median/max).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import VectorIndex
from gateway.cache.semantic.embedder import DIM, Embedder, EmbeddingModelMissing
from gateway.cache.semantic.matcher import RULES_THRESHOLD, SemanticMatcher
from gateway.cache.semantic.prompt_facts import read_prompt
from gateway.cache.semantic.verify import compare

# Building the 100k graph takes minutes on 2 cores the first time; pytest's per-test timeout is too short for it.
pytestmark = pytest.mark.timeout(1800)

CACHE = Path(__file__).resolve().parents[2] / ".benchmarks"
MISS = "semantic cache miss: embed 30 words + search 10k + verify 3 near misses"
SEARCH = "top-3 search, 100k x 384 random unit vectors (graph flushed)"
VERIFY = "verify one pair of 30-word prompts"

PROMPT = (
    "Could you explain in simple terms how a hash map handles collisions in Python 3 and why resizing the table "
    "keeps lookups fast on average, with a short example using ten keys"
)
NEAR_MISSES = (  # in the index beside 9,997 random vectors; each differs in one way verify catches
    PROMPT.replace("ten keys", "twenty keys"),
    PROMPT.replace("keeps lookups fast", "does not keep lookups fast"),
    PROMPT.replace("Python 3", "Python 2"),
)
LETTERS = "bcdfghjklmnpqrstvwxz"


def timed(benchmark: BenchmarkFixture, label: str, call: Callable[[], object], rounds: int = 300) -> None:
    """Times `call` with pytest-benchmark, then prints p50 and p99 of a separate loop of `rounds` calls."""
    benchmark(call)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    p50, p99 = np.percentile(samples, [50, 99]) / 1000
    benchmark.extra_info.update(p50_us=round(p50, 1), p99_us=round(p99, 1))
    print(f"\n{label}: p50 {p50:.1f} us, p99 {p99:.1f} us")


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def asked_prompts() -> Iterator[str]:
    """The prompt with a made-up word in front ("ref bcd:"), new each time, so that neither verify's cache nor the
    embedder has seen it; verify then still turns down each near miss for what differs (number, negation...)."""
    n = 0
    while True:
        tag = "".join(LETTERS[(n // len(LETTERS) ** k) % len(LETTERS)] for k in range(4))
        yield f"ref {tag}: {PROMPT}"
        n += 1


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    try:
        return Embedder(intra_op_threads=2)
    except EmbeddingModelMissing as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def cache_10k(embedder: Embedder) -> tuple[VectorIndex, dict[int, str]]:
    index = VectorIndex(DIM)
    prompts: dict[int, str] = {}
    for i, row in enumerate(unit_rows(10_000 - len(NEAR_MISSES), seed=3)):
        index.insert("tenant", i, row)
        prompts[i] = f"stored prompt number {i}"
    for i, (text, vector) in enumerate(zip(NEAR_MISSES, embedder.embed(list(NEAR_MISSES)), strict=True)):
        index.insert("tenant", 20_000 + i, vector)
        prompts[20_000 + i] = text
    index.flush()
    return index, prompts


def test_miss_embed_search_verify(
    benchmark: BenchmarkFixture, embedder: Embedder, cache_10k: tuple[VectorIndex, dict[int, str]]
) -> None:
    benchmark.group = MISS
    index, prompts = cache_10k
    matcher = SemanticMatcher()
    asked = asked_prompts()
    assert len(next(asked).split()) >= 30

    def miss() -> None:
        text = next(asked)
        (vector,) = embedder.embed([text])
        hits = index.search("tenant", vector, k=matcher.top_k)
        match = matcher.match(text, [(i, score, prompts[i]) for i, score in hits])
        assert not match.hit, match
        assert sum(match.rejections.values()) == len(NEAR_MISSES), "verify ran on every near miss"

    timed(benchmark, "miss: embed + search 10k + verify 3", miss)


def test_miss_reference_embed_only(benchmark: BenchmarkFixture, embedder: Embedder) -> None:
    benchmark.group = MISS
    asked = asked_prompts()
    timed(benchmark, "embed one 30-word prompt", lambda: embedder.embed([next(asked)]))


def test_miss_reference_search_only(
    benchmark: BenchmarkFixture, embedder: Embedder, cache_10k: tuple[VectorIndex, dict[int, str]]
) -> None:
    benchmark.group = MISS
    index, _ = cache_10k
    (vector,) = embedder.embed([PROMPT])
    timed(benchmark, "search 10k, top 3", lambda: index.search("tenant", vector, k=3))


@pytest.fixture(scope="module")
def data_100k() -> np.ndarray:
    return unit_rows(100_000, seed=0)  # bench_vectors.py's data, so its cached graph serves both


@pytest.fixture(scope="module")
def index_100k(data_100k: np.ndarray) -> VectorIndex:
    path = CACHE / f"bench-vectors-{len(data_100k)}x{DIM}-bf16-v3.gwv"
    if path.exists():
        return VectorIndex.load(path)
    index = VectorIndex(DIM)
    started = time.perf_counter()
    for i, row in enumerate(data_100k):
        index.insert("tenant", i, row)
    index.flush()
    print(f"\nbuilt the 100k graph in {time.perf_counter() - started:.0f} s")
    CACHE.mkdir(exist_ok=True)
    index.save(path)
    return index


def cycle(rows: np.ndarray) -> Iterator[memoryview]:
    """Each row in turn, as a float32 buffer (what VectorIndex takes without a copy)."""
    while True:
        for row in rows:
            yield memoryview(row)


def test_search_100k_ours(benchmark: BenchmarkFixture, index_100k: VectorIndex) -> None:
    benchmark.group = SEARCH
    assert index_100k.pending("tenant") == 0
    queries = cycle(unit_rows(1000, seed=1))
    timed(benchmark, "VectorIndex HNSW, top 3", lambda: index_100k.search("tenant", next(queries), k=3), rounds=2000)


def test_search_100k_numpy_brute_force(benchmark: BenchmarkFixture, data_100k: np.ndarray) -> None:
    benchmark.group = SEARCH
    rows = unit_rows(1000, seed=1)
    turn = iter(range(10**9))

    def search() -> np.ndarray:
        scores = data_100k @ rows[next(turn) % len(rows)]
        top = np.argpartition(-scores, 3)[:3]
        return top[np.argsort(-scores[top])]

    timed(benchmark, "numpy brute force, top 3", search, rounds=300)


def test_verify_asked_prompt_fresh(benchmark: BenchmarkFixture) -> None:
    benchmark.group = VERIFY
    cached = NEAR_MISSES[0]
    read_prompt(cached)
    asked = asked_prompts()
    timed(benchmark, "compare, cached prompt's facts kept", lambda: compare(cached, next(asked)), rounds=2000)


def test_verify_both_prompts_fresh(benchmark: BenchmarkFixture) -> None:
    benchmark.group = VERIFY
    asked = asked_prompts()

    def both_fresh() -> None:
        read_prompt.cache_clear()
        compare(NEAR_MISSES[0], next(asked))

    timed(benchmark, "compare, both prompts read afresh", both_fresh, rounds=2000)


def test_verify_reference_read_one_prompt(benchmark: BenchmarkFixture) -> None:
    benchmark.group = VERIFY
    asked = asked_prompts()
    timed(benchmark, "read_prompt of one 30-word prompt", lambda: read_prompt(next(asked)), rounds=2000)


def test_verify_learned_verdict_asked_prompt_fresh(benchmark: BenchmarkFixture) -> None:
    """The whole decision on a pair no rule vetoes, so the learned verdict scores it (features + 500 trees)."""
    benchmark.group = VERIFY
    matcher = SemanticMatcher()
    read_prompt(PROMPT)
    asked = asked_prompts()
    verdict = matcher.accepts(PROMPT, next(asked), 0.9)
    assert verdict.same or verdict.kind == "model", verdict
    timed(benchmark, "matcher.accepts, learned verdict", lambda: matcher.accepts(PROMPT, next(asked), 0.9), rounds=2000)


def test_verify_reference_rules_alone_asked_prompt_fresh(benchmark: BenchmarkFixture) -> None:
    benchmark.group = VERIFY
    matcher = SemanticMatcher(RULES_THRESHOLD, model=None)
    read_prompt(PROMPT)
    asked = asked_prompts()
    timed(benchmark, "matcher.accepts, rules alone", lambda: matcher.accepts(PROMPT, next(asked), 0.9), rounds=2000)
