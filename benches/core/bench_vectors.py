"""Top-1 cosine search over 100k x 384 embeddings: gateway._core.VectorIndex against numpy brute force and the
usearch Python package driven directly, in the same run; and the cost of an insert on the request path.

    pytest benches/core/bench_vectors.py --benchmark-enable     (builds two 100k graphs first: about a minute)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from usearch.index import Index

from gateway._core import VectorIndex

COUNT, DIM = 100_000, 384
# Building two 100k graphs takes minutes on two cores.
pytestmark = pytest.mark.timeout(1800)
RNG = np.random.default_rng(0)
DATA = RNG.standard_normal((COUNT, DIM)).astype(np.float32)
DATA /= np.linalg.norm(DATA, axis=1, keepdims=True)
QUERIES = DATA[RNG.integers(0, COUNT, 200)] + 0.02 * RNG.standard_normal((200, DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def ours() -> VectorIndex:
    index = VectorIndex(DIM)
    for i, row in enumerate(DATA):
        index.insert("tenant", i, row)
    index.flush()
    return index


@pytest.fixture(scope="module")
def theirs() -> Index:
    index = Index(ndim=DIM, metric="ip", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
    index.add(np.arange(COUNT), DATA, threads=1)
    return index


def _p99_ms(search: Callable[[np.ndarray], object]) -> float:
    samples = []
    for query in QUERIES:
        started = time.perf_counter()
        search(query)
        samples.append(time.perf_counter() - started)
    return float(np.percentile(samples, 99) * 1000)


def _record(benchmark: BenchmarkFixture, search: Callable[[np.ndarray], object]) -> None:
    benchmark.group = "top-1 of 100k x 384"
    queries = iter(np.tile(QUERIES, (1000, 1)))
    benchmark(lambda: search(next(queries)))
    benchmark.extra_info["p99_ms"] = round(_p99_ms(search), 3)


def test_search_ours(benchmark: BenchmarkFixture, ours: VectorIndex) -> None:
    _record(benchmark, lambda q: ours.search("tenant", q, k=1))


def test_search_usearch_python(benchmark: BenchmarkFixture, theirs: Index) -> None:
    _record(benchmark, lambda q: theirs.search(q, 1))


def test_search_numpy_brute_force(benchmark: BenchmarkFixture) -> None:
    _record(benchmark, lambda q: int(np.argmax(DATA @ q)))


def test_insert_ours(benchmark: BenchmarkFixture, ours: VectorIndex) -> None:
    """An insert into the 100k namespace, as a cache miss adds its entry: an append, the graph catches up later."""
    benchmark.group = "insert one vector into a 100k index"
    ids = iter(range(COUNT, COUNT + 10_000_000))
    benchmark(lambda: ours.insert("tenant", next(ids), DATA[0]))


def test_insert_usearch_python(benchmark: BenchmarkFixture, theirs: Index) -> None:
    benchmark.group = "insert one vector into a 100k index"
    ids = iter(range(COUNT, COUNT + 10_000_000))
    benchmark.pedantic(lambda: theirs.add(next(ids), DATA[0]), rounds=300)


def test_recall_at_1(ours: VectorIndex) -> None:
    exact = np.argmax(DATA @ QUERIES.T, axis=0)
    hits = sum(ours.search("tenant", q, k=1)[0][0] == int(e) for q, e in zip(QUERIES, exact, strict=True))
    assert hits / len(QUERIES) >= 0.95
