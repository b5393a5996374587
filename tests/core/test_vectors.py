"""gateway._core.VectorIndex and VectorSnapshot: exact and HNSW search by cosine, namespaces, thresholds, removal,
payloads, snapshots (saved, mapped, merged) and readers while the next snapshot replaces the file."""

from __future__ import annotations

import array
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from gateway._core import VectorIndex, VectorSnapshot

DIM = 64


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force(data: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = data @ (query / np.linalg.norm(query))
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def test_exact_search_agrees_with_numpy_brute_force() -> None:
    data = unit_rows(2000)
    index = VectorIndex(DIM)
    for i, row in enumerate(data):
        index.insert("tenant", i, row)
    assert index.pending("tenant") == 0, "below the threshold: no graph"
    for query in unit_rows(50, seed=1):
        hits = index.search("tenant", query, k=5)
        assert [i for i, _ in hits] == brute_force(data, query, 5)
        expected = data[[i for i, _ in hits]] @ query
        assert [s for _, s in hits] == pytest.approx(list(expected), abs=1e-5)


def test_vectors_may_be_lists_buffers_or_unnormalised() -> None:
    index = VectorIndex(4)
    index.insert("t", 1, [3.0, 0.0, 0.0, 0.0])
    index.insert("t", 2, array.array("f", [0.0, 2.0, 0.0, 0.0]))
    index.insert("t", 3, np.array([0.0, 0.0, 5.0, 0.0], dtype=np.float64))  # not float32: converted per element
    index.insert("t", 4, memoryview(np.array([0.0, 0.0, 0.0, 1.0], dtype=np.float32)))
    assert index.search("t", [10.0, 0.0, 0.0, 0.0]) == [(1, pytest.approx(1.0))]
    assert index.search("t", np.array([0, 1, 0, 0], dtype=np.float32))[0][0] == 2
    assert index.search("t", (0.0, 0.0, 1.0, 0.0))[0][0] == 3
    assert index.search("t", [0.0, 0.0, 0.0, 1.0])[0][0] == 4
    assert len(index) == 4


def test_namespaces_are_isolated() -> None:
    index = VectorIndex(DIM)
    a, b = unit_rows(2, seed=2)
    index.insert("team-a", 1, a)
    index.insert("team-b", 2, b)
    assert [i for i, _ in index.search("team-a", b, k=10)] == [1], "team-b's entry never shows in team-a"
    assert [i for i, _ in index.search("team-b", a, k=10)] == [2]
    assert index.search("team-c", a, k=10) == []
    assert index.namespaces() == ["team-a", "team-b"]
    assert (index.count("team-a"), index.count("team-c")) == (1, 0)


def test_min_score_threshold_and_k() -> None:
    index = VectorIndex(2)
    for i, angle in enumerate([0.0, 0.3, 0.6, 1.2, 3.0]):
        index.insert("t", i, [float(np.cos(angle)), float(np.sin(angle))])
    hits = index.search("t", [1.0, 0.0], k=10, min_score=0.8)
    assert [i for i, _ in hits] == [0, 1, 2]
    assert all(score >= 0.8 for _, score in hits)
    assert index.search("t", [1.0, 0.0], k=2) == [(0, pytest.approx(1.0)), (1, pytest.approx(np.cos(0.3)))]
    assert index.search("t", [1.0, 0.0], k=0) == []
    assert index.search("t", [1.0, 0.0], k=10, min_score=1.01) == []


def test_replace_and_remove() -> None:
    index = VectorIndex(2)
    index.insert("t", 7, [1.0, 0.0])
    index.insert("t", 7, [0.0, 1.0])
    assert index.count("t") == 1
    assert index.search("t", [0.0, 1.0])[0] == (7, pytest.approx(1.0))
    index.insert("t", 8, [1.0, 0.0])
    assert index.remove("t", 7)
    assert not index.remove("t", 7)
    assert not index.remove("nobody", 7)
    assert [i for i, _ in index.search("t", [0.0, 1.0], k=5)] == [8]


@pytest.mark.parametrize(
    ("vector", "error", "message"),
    [
        ([1.0, 0.0, 0.0], ValueError, "vector has 3 dimensions; this index holds 4"),
        ([0.0, 0.0, 0.0, 0.0], ValueError, "not all zeros"),
        ([float("nan"), 1.0, 0.0, 0.0], ValueError, "NaN or infinite"),
        (np.ones((2, 2), dtype=np.float32), ValueError, "one-dimensional"),
        ("abcd", ValueError, "sequence of floats"),
    ],
)
def test_bad_vectors(vector: object, error: type[Exception], message: str) -> None:
    index = VectorIndex(4)
    with pytest.raises(error, match=message):
        index.insert("t", 1, vector)  # type: ignore[arg-type]
    with pytest.raises(error, match=message):
        index.search("t", vector)  # type: ignore[arg-type]
    assert len(index) == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="dim must be"):
        VectorIndex(0)
    with pytest.raises(ValueError, match="connectivity"):
        VectorIndex(4, connectivity=1)
    with pytest.raises(ValueError, match="quantization must be one of"):
        VectorIndex(4, quantization="f8")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        VectorIndex(4).insert("t", -1, [1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def graph_index() -> tuple[VectorIndex, np.ndarray]:
    data = unit_rows(5000, seed=3)
    index = VectorIndex(DIM, hnsw_min_vectors=1000, expansion_search=128)
    for i, row in enumerate(data):
        index.insert("t", i, row)
    index.flush()
    return index, data


def test_hnsw_recall_at_1_against_exact(graph_index: tuple[VectorIndex, np.ndarray]) -> None:
    index, data = graph_index
    assert index.pending("t") == 0
    # Fresh random queries: nothing is near them, the hardest case for a graph (0.99 measured at ef 128).
    queries = unit_rows(200, seed=4)
    found = sum(index.search("t", q)[0][0] == brute_force(data, q, 1)[0] for q in queries)
    assert found / len(queries) >= 0.95
    # Near-duplicates of stored entries (cosine ~0.97), the semantic cache's case.
    noisy = data[:200] + 0.25 * unit_rows(200, seed=5)
    found = sum(index.search("t", q)[0][0] == brute_force(data, q, 1)[0] for q in noisy)
    assert found / len(noisy) >= 0.95


@pytest.mark.parametrize("quantization", ["f32", "bf16", "f16", "i8"])
def test_every_graph_type_returns_exact_scores(quantization: str, tmp_path: Path) -> None:
    data = unit_rows(1500, seed=8)
    index = VectorIndex(DIM, hnsw_min_vectors=500, quantization=quantization)  # type: ignore[arg-type]
    for i, row in enumerate(data):
        index.insert("t", i, row)
    index.flush()
    assert index.quantization == quantization
    noisy = data[:100] + 0.25 * unit_rows(100, seed=9)
    found = 0
    for i, q in enumerate(noisy):
        (hit, score), *_ = index.search("t", q, k=3)
        found += hit == i
        assert score == pytest.approx(float(data[hit] @ (q / np.linalg.norm(q))), abs=1e-5), "re-scored in f32"
    assert found >= 95, "recall@1 on near-duplicates (i8 misses the odd one; the others find all)"
    index.save(tmp_path / "q.gwv")
    assert VectorIndex.load(tmp_path / "q.gwv").quantization == quantization


def test_entries_are_searchable_before_the_graph_has_them() -> None:
    data = unit_rows(1500, seed=5)
    index = VectorIndex(DIM, hnsw_min_vectors=1000)
    for i, row in enumerate(data):
        index.insert("t", i, row)
        if i % 250 == 0:
            assert index.search("t", row)[0][0] == i, "a fresh insert is found at once"
    for i in range(0, 1500, 37):
        assert index.search("t", data[i])[0] == (i, pytest.approx(1.0, abs=1e-4))


def test_persistence_round_trip(graph_index: tuple[VectorIndex, np.ndarray], tmp_path: Path) -> None:
    index, data = graph_index
    index.insert("small", 1, data[0])
    path = tmp_path / "index.gwv"
    index.save(path)
    loaded = VectorIndex.load(str(path))
    assert (len(loaded), loaded.dim, loaded.hnsw_min_vectors) == (len(index), DIM, 1000)
    assert loaded.namespaces() == ["small", "t"]
    assert loaded.pending("t") == 0, "the graph is loaded, not rebuilt"
    for query in unit_rows(30, seed=6):
        assert loaded.search("t", query, k=3) == index.search("t", query, k=3)
    assert loaded.search("small", data[0]) == [(1, pytest.approx(1.0))]
    assert index.remove("small", 1)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="cannot read"):
        VectorIndex.load(tmp_path / "missing")
    (tmp_path / "junk").write_bytes(b"not an index at all")
    with pytest.raises(ValueError, match="not a saved VectorIndex"):
        VectorIndex.load(tmp_path / "junk")
    (tmp_path / "short").write_bytes(b"GWVECS03\x01")
    with pytest.raises(ValueError, match="truncated"):
        VectorIndex.load(tmp_path / "short")
    with pytest.raises(ValueError, match="truncated"):
        VectorSnapshot(tmp_path / "short")
    with pytest.raises(OSError, match="cannot read"):
        VectorSnapshot(tmp_path / "missing")


def test_concurrent_inserts_and_searches() -> None:
    data = unit_rows(4000, seed=7)
    index = VectorIndex(DIM, hnsw_min_vectors=500)
    errors: list[BaseException] = []

    def writer(part: int) -> None:
        try:
            for i in range(part, 4000, 2):
                index.insert("t", i, data[i])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for i in range(0, 4000, 7):
                index.search("t", data[i], k=3)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(p,)) for p in (0, 1)] + [threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index.count("t") == 4000
    for i in range(0, 4000, 101):
        assert index.search("t", data[i])[0][0] == i


def test_payloads_travel_with_their_vectors() -> None:
    index = VectorIndex(4)
    index.insert("t", 1, [1.0, 0.0, 0.0, 0.0], b"first")
    index.insert("t", 2, [0.0, 1.0, 0.0, 0.0])
    assert (index.payload("t", 1), index.payload("t", 2), index.payload("t", 3), index.payload("u", 1)) == (
        b"first",
        b"",
        None,
        None,
    )
    index.insert("t", 1, [1.0, 0.0, 0.0, 0.0], b"second")
    assert index.payload("t", 1) == b"second"


def test_a_mapped_snapshot_answers_as_the_index_that_saved_it(
    graph_index: tuple[VectorIndex, np.ndarray], tmp_path: Path
) -> None:
    index, data = graph_index
    index.insert("small", 2, data[1], b"payload")
    for i in range(100):  # pending rows, scanned exactly in both
        index.insert("t", 100_000 + i, data[i] * -1.0, f"p{i}".encode())
    path = tmp_path / "snapshot.gwv"
    index.save(path, label=b"feed 17-0")
    snapshot = VectorSnapshot(path)
    assert (snapshot.label, snapshot.dim, len(snapshot), snapshot.namespaces()) == (
        b"feed 17-0",
        DIM,
        len(index),
        ["small", "t"],
    )
    assert snapshot.pending("t") == index.pending("t")
    for query in [*unit_rows(30, seed=6), *(-data[:20])]:
        assert snapshot.search("t", query, k=3) == index.search("t", query, k=3)
    assert snapshot.search("small", data[1]) == [(2, pytest.approx(1.0))]
    assert snapshot.payload("small", 2) == b"payload"
    assert snapshot.payload("t", 100_005) == b"p5"
    assert snapshot.payloads("small") == [b"payload"]
    assert snapshot.contains("t", 7)
    assert not snapshot.contains("t", 10**9)
    assert VectorIndex.load(path).payload("t", 100_005) == b"p5"
    for i in range(100):
        index.remove("t", 100_000 + i)
    index.remove("small", 2)


def test_merged_snapshots_drop_removed_and_replaced_entries(tmp_path: Path) -> None:
    data = unit_rows(1500, seed=12)
    first = VectorIndex(DIM, hnsw_min_vectors=10_000)  # exact: answers comparable with numpy
    for i in range(1000):
        first.insert("t", i, data[i], b"old")
    first.save(tmp_path / "1.gwv")
    base = VectorSnapshot(tmp_path / "1.gwv")
    delta = VectorIndex(DIM, hnsw_min_vectors=10_000)
    for i in range(1000, 1500):
        delta.insert("t", i, data[i], b"new")
    delta.insert("t", 5, data[5], b"replaced")
    report = delta.save_merged(tmp_path / "2.gwv", base, [("t", 7), ("t", 8)], label=b"2")
    merged = VectorSnapshot(tmp_path / "2.gwv")
    assert report == (1498, 0, 0)
    assert (merged.count("t"), merged.payload("t", 5), merged.payload("t", 9), merged.payload("t", 1400)) == (
        1498,
        b"replaced",
        b"old",
        b"new",
    )
    assert not merged.contains("t", 7)
    kept = np.array([i for i in range(1500) if i not in (7, 8)])
    for query in unit_rows(20, seed=13):
        assert [i for i, _ in merged.search("t", query, k=5)] == [
            int(kept[j]) for j in brute_force(data[kept], query, 5)
        ]
    # Bounded to the newest 600: the delta's 501 and the base's newest 99.
    delta.save_merged(tmp_path / "3.gwv", base, [], max_entries=600)
    assert VectorSnapshot(tmp_path / "3.gwv").count() == 600
    assert not VectorSnapshot(tmp_path / "3.gwv").contains("t", 0)
    # What the merged snapshot holds identically leaves the delta.
    delta.insert("t", 1001, data[0], b"changed after the merge")
    shared = delta.remove_shared(merged)
    assert len(shared) == 500
    assert (len(delta), delta.payload("t", 1001)) == (1, b"changed after the merge")
    with pytest.raises(ValueError, match="settings"):
        VectorIndex(DIM + 1).save_merged(tmp_path / "4.gwv", base)


def test_merges_grow_a_graph_by_a_bounded_number_of_rows(tmp_path: Path) -> None:
    data = unit_rows(3000, seed=14)
    writer = VectorIndex(DIM, hnsw_min_vectors=1000)
    for i in range(3000):
        writer.insert("t", i, data[i])
    first = writer.save_merged(tmp_path / "1.gwv", max_graph_adds=0)
    assert first == (3000, VectorSnapshot(tmp_path / "1.gwv").pending("t"), 0)
    snapshot = VectorSnapshot(tmp_path / "1.gwv")
    empty = VectorIndex(DIM, hnsw_min_vectors=1000)
    while snapshot.pending("t"):
        before = snapshot.pending("t")
        _, pending, added = empty.save_merged(tmp_path / "next.gwv", snapshot, max_graph_adds=1000)
        assert added == min(1000, before)
        snapshot = VectorSnapshot(tmp_path / "next.gwv")
        assert snapshot.pending("t") == pending == before - added
        for i in range(0, 3000, 97):  # every entry found throughout: in the graph or in the exact scan
            assert snapshot.search("t", data[i])[0] == (i, pytest.approx(1.0, abs=1e-4))


def test_readers_keep_searching_while_the_next_snapshot_replaces_the_file(tmp_path: Path) -> None:
    data = unit_rows(3000, seed=15)
    path = tmp_path / "index.gwv"
    index = VectorIndex(DIM, hnsw_min_vectors=500)
    for i in range(1000):
        index.insert("t", i, data[i])
    index.flush()
    index.save(path, label=b"1000")
    errors: list[BaseException] = []
    searches, misses = [0], [0]
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                snapshot = VectorSnapshot(path)  # whichever file is in place now
                n = int(snapshot.label)
                assert snapshot.count("t") == n
                for i in range(0, n, 53):
                    searches[0] += 1
                    misses[0] += snapshot.search("t", data[i])[0][0] != i  # the graph is approximate
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for thread in readers:
        thread.start()
    for n in (1500, 2000, 2500, 3000):
        for i in range(n - 500, n):
            index.insert("t", i, data[i])
        index.save(path, label=str(n).encode())
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert misses[0] <= searches[0] // 50
    assert [p.name for p in tmp_path.iterdir()] == ["index.gwv"], "no temporary file left behind"


# Saves snapshots of growing size to one path, as fast as it can: `python -c WRITER name path rounds`.
WRITER = """
import sys
import numpy as np
from gateway._core import VectorIndex
name, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = np.random.default_rng(len(name)).standard_normal((1000, 64)).astype(np.float32)
index = VectorIndex(64, hnsw_min_vectors=200)
for n in range(1, rounds + 1):
    for i in range((n - 1) * 10, n * 10):
        index.insert("t", i, rows[i], name.encode())
    index.save(path, label=f"{name} {n * 10}".encode())
"""


@pytest.mark.timeout(120)
def test_concurrent_writers_replace_the_snapshot_whole(tmp_path: Path) -> None:
    """Two processes save to one path at once (what two lock holders would do, if the lock failed): every file a
    reader opens is one writer's whole snapshot, never a mix or a partial write, and no temporary file remains."""
    path = tmp_path / "index.gwv"
    rounds = 60
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name, str(path), str(rounds)]) for name in ("first", "second")
    ]
    opened: set[bytes] = set()
    try:
        while any(w.poll() is None for w in writers):
            try:
                snapshot = VectorSnapshot(path)
            except OSError:
                continue  # none written yet
            name, n = snapshot.label.decode().split()
            assert snapshot.count("t") == int(n)
            assert set(snapshot.payloads("t")) == {name.encode()}
            opened.add(snapshot.label)
    finally:
        for w in writers:
            if w.poll() is None:
                w.kill()
    assert [w.wait(timeout=30) for w in writers] == [0, 0]
    final = VectorSnapshot(path)
    assert final.label in (b"first 600", b"second 600")
    assert final.search("t", final_row(final.label))[0][0] == 599
    assert len(opened) > 1
    assert [p.name for p in tmp_path.iterdir()] == ["index.gwv"], "no temporary file left behind"


def final_row(label: bytes) -> np.ndarray:
    name = label.split()[0].decode()
    row: np.ndarray = np.random.default_rng(len(name)).standard_normal((1000, 64)).astype(np.float32)[599]
    return row
