"""gateway._core.VectorIndex: exact agreement with numpy, namespace isolation, thresholds, removal, persistence,
graph recall, error paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway._core import VectorIndex

DIM = 64


def vectors(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)


def normalised(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_exact_search_agrees_with_numpy() -> None:
    data = vectors(500)
    index = VectorIndex(DIM)
    for i, row in enumerate(data):
        index.insert("team", i, row)
    queries = vectors(20, seed=1)
    for query in queries:
        scores = normalised(data) @ (query / np.linalg.norm(query))
        expected = np.argsort(-scores)[:5]
        found = index.search("team", query, k=5)
        assert [i for i, _ in found] == list(expected)
        assert [s for _, s in found] == pytest.approx(list(scores[expected]), abs=1e-5)


def test_lists_and_arrays_are_both_accepted() -> None:
    index = VectorIndex(3)
    index.insert("n", 1, [1.0, 0.0, 0.0])
    index.insert("n", 2, np.array([0.0, 1.0, 0.0], dtype=np.float32))
    assert index.search("n", [0.9, 0.1, 0.0])[0][0] == 1
    assert index.count("n") == 2


def test_namespaces_never_mix() -> None:
    index = VectorIndex(DIM)
    data = vectors(10)
    for i, row in enumerate(data):
        index.insert("team-a", i, row)
    assert index.search("team-b", data[0], k=10) == []
    index.insert("team-b", 99, data[0])
    assert index.search("team-b", data[0], k=10)[0][0] == 99
    assert all(i != 99 for i, _ in index.search("team-a", data[0], k=10))


def test_threshold_and_removal() -> None:
    index = VectorIndex(DIM)
    data = vectors(50)
    for i, row in enumerate(data):
        index.insert("n", i, row)
    assert [i for i, _ in index.search("n", data[7], k=3, min_score=0.999)] == [7]
    assert index.remove("n", 7)
    assert not index.remove("n", 7)
    assert all(i != 7 for i, _ in index.search("n", data[7], k=50))
    index.insert("n", 7, data[8])
    assert {i for i, _ in index.search("n", data[8], k=2, min_score=0.999)} == {7, 8}
    assert len(index) == 50


def test_graph_recall_against_exact() -> None:
    data = vectors(6000, seed=3)
    index = VectorIndex(DIM, hnsw_min_vectors=1000)
    for i, row in enumerate(data):
        index.insert("n", i, row)
    index.flush()
    queries = data[:300] + 0.05 * vectors(300, seed=4)
    exact = np.argmax(normalised(data) @ normalised(queries).T, axis=0)
    hits = sum(index.search("n", q, k=1)[0][0] == int(e) for q, e in zip(queries, exact, strict=True))
    assert hits / 300 >= 0.95


def test_save_and_load(tmp_path: Path) -> None:
    index = VectorIndex(DIM)
    data = vectors(100)
    for i, row in enumerate(data):
        index.insert("a" if i % 2 else "b", i, row)
    index.remove("a", 1)
    path = str(tmp_path / "index.bin")
    index.save(path)
    loaded = VectorIndex.load(path)
    assert loaded.dim == DIM
    assert loaded.count("a") == 49
    assert loaded.search("b", data[10])[0][0] == 10
    with pytest.raises(OSError, match="cannot read"):
        VectorIndex.load(str(tmp_path / "missing.bin"))
    (tmp_path / "junk.bin").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a saved VectorIndex"):
        VectorIndex.load(str(tmp_path / "junk.bin"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: i.insert("n", 1, [1.0, 2.0]), "vector has 2 dimensions; this index holds 64"),
        (lambda i: i.insert("n", 1, [0.0] * DIM), "not all zeros"),
        (lambda i: i.search("n", [1.0] * 3), "vector has 3 dimensions"),
    ],
)
def test_bad_vectors(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(VectorIndex(DIM))  # type: ignore[operator]
    with pytest.raises(ValueError, match="dim must be"):
        VectorIndex(0)
