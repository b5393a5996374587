"""The semantic index's two layers (a mapped snapshot below, this process's own entries above) and the folder that
shares snapshots between the processes of a machine; then two ResponseCaches on a real Redis feed, the second
starting from the first's snapshot."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from gateway.cache.backends import SharedVector
from gateway.cache.backends.memory import MemoryBackend
from gateway.cache.backends.redis import RedisBackend
from gateway.cache.entries import EntryKey
from gateway.cache.semantic_index import Candidate, SemanticIndex, Snapshot, SnapshotFolder
from gateway.cache.service import ResponseCache
from gateway.chat import ChatRequest, ChatResult, Message, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.records.classification import Classification

if TYPE_CHECKING:
    from gateway.cache.service import Vector
from tests.store.redis import RedisServer

DIM = 16
NOW = 1_000_000.0


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    normed: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normed


def key(i: int, team: str = "t") -> EntryKey:
    return EntryKey(team, "", "gpt", f"{i + 1:016x}{7:016x}")


def near(v: np.ndarray, seed: int) -> Vector:
    noisy = v + 0.05 * unit_rows(1, seed)[0]
    out: Vector = (noisy / np.linalg.norm(noisy)).astype(np.float32)
    return out


def filled(n: int, seed: int = 0, contexts: Sequence[str] = ("a", "b")) -> tuple[SemanticIndex, np.ndarray]:
    index = SemanticIndex(DIM, max_entries=100_000)
    data = unit_rows(n, seed)
    for i, v in enumerate(data):
        index.add(contexts[i % len(contexts)], key(i), f"prompt {i}", v, NOW + 3600)
    return index, data


def ids(found: list[Candidate]) -> list[str]:
    return [c.key.id for c in found]


def test_a_process_starting_from_a_snapshot_answers_as_the_index_that_wrote_it(tmp_path: Path) -> None:
    writer, data = filled(6000)  # 3,000 per context: graphs in the writer's own layer and in the snapshot
    path = tmp_path / "s.gwv"
    entries, _, _ = writer.write_snapshot(path, b"42-0", max_graph_adds=10_000)
    assert entries == 6000
    reader = SemanticIndex(DIM, max_entries=100_000)
    reader.adopt(Snapshot(path))
    assert reader.base is not None
    assert reader.base.label == b"42-0"
    assert (len(reader), reader.count("t"), reader.count("other")) == (6000, 6000, 0)
    queries = [(("a", "b")[i % 2], near(data[i], seed=i)) for i in range(0, 6000, 61)]
    for context, q in queries:
        got = reader.search(context, q, 3, 0.5, NOW)
        assert got == writer.search(context, q, 3, 0.5, NOW)
        assert got[0].prompt.startswith("prompt ")
    # The writer maps its own snapshot: its own layer empties, and both now search the very same file.
    writer.adopt(Snapshot(path))
    assert writer.sizes() == (0, 6000)
    for context, q in queries:
        assert reader.search(context, q, 3, 0.5, NOW) == writer.search(context, q, 3, 0.5, NOW)


def test_own_entries_hide_the_base_copy_and_removals_hide_base_entries(tmp_path: Path) -> None:
    writer, data = filled(200, contexts=("a",))
    writer.write_snapshot(tmp_path / "s.gwv", b"", max_graph_adds=0)
    index = SemanticIndex(DIM, max_entries=100_000)
    index.adopt(Snapshot(tmp_path / "s.gwv"))
    # Stored again with a new answer (a longer TTL): this process's copy wins, once.
    index.add("a", key(5), "prompt 5", data[5], NOW + 7200)
    found = index.search("a", data[5], 3, 0.0, NOW)
    assert [c.expires_at for c in found if c.key == key(5)] == [NOW + 7200]
    assert index.count(None) == 200
    # Gone from the backend: removed from both layers.
    index.remove("a", key(5).id)
    index.remove("a", key(6).id)
    assert key(5).id not in ids(index.search("a", data[5], 3, 0.0, NOW))
    assert key(6).id not in ids(index.search("a", data[6], 3, 0.0, NOW))
    assert index.count("t") == 198
    # Stored again: visible again.
    index.add("a", key(6), "prompt 6", data[6], NOW + 60)
    assert ids(index.search("a", data[6], 1, 0.0, NOW)) == [key(6).id]
    # Expired base entries are dropped from the answer.
    assert ids(index.search("a", data[7], 1, 0.99, NOW + 4000)) == []
    assert key(7).id not in ids(index.search("a", data[7], 3, 0.0, NOW))


def test_the_next_snapshot_folds_in_own_entries_and_removals(tmp_path: Path) -> None:
    writer, data = filled(300, contexts=("a",))
    writer.write_snapshot(tmp_path / "1.gwv", b"1", max_graph_adds=0)
    writer.adopt(Snapshot(tmp_path / "1.gwv"))
    more = unit_rows(50, seed=9)
    for i, v in enumerate(more):
        writer.add("a", key(1000 + i), f"more {i}", v, NOW + 3600)
    writer.remove("a", key(3).id)
    assert writer.sizes() == (50, 300)
    assert writer.needs_snapshot()
    writer.write_snapshot(tmp_path / "2.gwv", b"2", max_graph_adds=0)
    writer.adopt(Snapshot(tmp_path / "2.gwv"))
    assert writer.sizes() == (0, 349)
    assert not writer.needs_snapshot()
    assert key(3).id not in ids(writer.search("a", data[3], 3, 0.0, NOW))
    assert ids(writer.search("a", more[7], 1, 0.0, NOW)) == [key(1007).id]


def test_the_top_hit_over_both_layers_is_the_exact_scans(tmp_path: Path) -> None:
    writer, data = filled(300, contexts=("a",))
    writer.write_snapshot(tmp_path / "s.gwv", b"", max_graph_adds=0)
    index = SemanticIndex(DIM, max_entries=1000)
    index.adopt(Snapshot(tmp_path / "s.gwv"))
    own = unit_rows(100, seed=31)
    for i, v in enumerate(own):
        index.add("a", key(300 + i), f"own {i}", v, NOW + 60)
    everything = np.concatenate([data, own])
    for q in unit_rows(50, seed=32):
        best = int(np.argmax(everything @ q))
        assert ids(index.search("a", q, 1, -1.0, NOW)) == [key(best).id]


def test_the_own_layer_is_bounded_oldest_first() -> None:
    index = SemanticIndex(DIM, max_entries=10)
    data = unit_rows(15, seed=3)
    for i, v in enumerate(data):
        index.add("a", key(i), f"p{i}", v, NOW + 60)
    assert len(index) == 10
    assert ids(index.search("a", data[0], 1, 0.99, NOW)) == []
    assert ids(index.search("a", data[14], 1, 0.99, NOW)) == [key(14).id]
    index.forget(key(14).id)
    assert len(index) == 9


def test_one_process_writes_the_folders_snapshots_until_it_exits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = SnapshotFolder(tmp_path), SnapshotFolder(tmp_path)
    assert first.lead()
    assert not second.lead(), "the lock is taken"
    writer, _ = filled(100)
    assert first.due(0.0, writer)
    snapshot = first.write(writer, b"7-1", now=0.0)
    assert snapshot is not None
    assert snapshot.count() == 100
    assert first.open_newest() is None, "unchanged since it was opened"
    assert second.changed()
    opened = second.open_newest()
    assert opened is not None
    assert opened.label == b"7-1"
    assert not second.changed()
    first.close()
    assert second.lead(), "the lock passes when its holder goes"
    second.close()
    # A damaged file is skipped with a warning, not raised.
    (tmp_path / "semantic-index.gwv").write_bytes(b"GWVECS03 and then nothing useful")
    with caplog.at_level(logging.WARNING):
        assert SnapshotFolder(tmp_path).open_newest() is None
    assert "skipped" in caplog.text


def test_an_entry_damaged_on_disk_is_skipped_and_the_rest_answer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer, data = filled(40, contexts=("a",))
    path = tmp_path / "s.gwv"
    writer.write_snapshot(path, b"", max_graph_adds=0)
    entry = b'["t","","gpt","' + key(5).id.encode()
    damaged = path.read_bytes().replace(entry, b"\xff" * len(entry), 1)  # the same length: the structure holds
    assert damaged != path.read_bytes()
    path.write_bytes(damaged)
    index = SemanticIndex(DIM, max_entries=100)
    index.adopt(Snapshot(path))
    with caplog.at_level(logging.WARNING):
        found = index.search("a", data[5], 3, 0.0, NOW)
    assert key(5).id not in ids(found)
    assert len(found) == 3, "the next candidates instead"
    assert "unreadable entry" in caplog.text
    assert ids(index.search("a", data[6], 1, 0.0, NOW)) == [key(6).id]
    assert index.count("t") == 39
    # The next snapshot written from it leaves the damaged entry out.
    index.write_snapshot(tmp_path / "next.gwv", b"", max_graph_adds=0)
    assert Snapshot(tmp_path / "next.gwv").count() == 39


# --- two ResponseCaches sharing Redis and a folder --------------------------------------------------------------------


class TableEmbedder:
    """Vectors from a table: a paraphrase maps near its original, anything else to a vector of its own."""

    dim = DIM

    def __init__(self, table: dict[str, Vector]) -> None:
        self._table = table

    async def embed(self, text: str) -> Vector:
        if text not in self._table:
            self._table[text] = unit_rows(1, seed=abs(hash(text)) % 10_000)[0]
        return self._table[text]

    async def close(self) -> None:
        pass


def accept_first(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
    return (candidates[0] if candidates else None), []


async def wait_for(condition: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def paraphrases(n: int) -> dict[str, Vector]:
    """An embedding table: "paraphrase i" near "question i"."""
    base = unit_rows(n, seed=21)
    table: dict[str, Vector] = {f"question {i}": base[i] for i in range(n)}
    table.update({f"paraphrase {i}": near(base[i], seed=100 + i) for i in range(n)})
    return table


def shared_cache(redis_url: str, folder: SnapshotFolder, table: dict[str, Vector]) -> ResponseCache:
    """A gateway's cache on Redis (entries and the semantic feed) sharing its semantic index through `folder`."""
    backend = RedisBackend(redis_url, prefix="test:", timeout_s=1.0)
    return ResponseCache(
        CacheConfig(backend="redis", similarity_threshold=0.8),
        {"gpt": CachePolicyConfig(semantic=True, ttl_s=600)},
        backend,
        load_embedder=lambda: _ready(TableEmbedder(table)),
        verify=accept_first,
        feed=backend,
        snapshots=folder,
    )


async def store(responses: ResponseCache, text: str) -> None:
    chat = ChatRequest("gpt", [Message("user", text)])
    plan = responses.plan(chat, "team", "gpt", classification=Classification.PUBLIC)
    assert plan is not None
    result = ChatResult("", "gpt-4o", f"answer to {text}", "stop", Usage(5, 5))
    assert await responses.store(plan, result, Usage(5, 5), served_model="gpt", provider="x", cost_usd=0.0)


async def ask(responses: ResponseCache, text: str) -> str | None:
    chat = ChatRequest("gpt", [Message("user", text)])
    plan = responses.plan(chat, "team", "gpt", classification=Classification.PUBLIC)
    assert plan is not None
    hit = await responses.lookup(plan)
    return hit.entry.text if hit is not None else None


async def test_a_gateway_starting_maps_the_snapshot_and_follows_the_feed_from_there(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    table = paraphrases(40)

    def cache(folder: SnapshotFolder) -> ResponseCache:
        return shared_cache(redis_server.url, folder, table)

    writer = cache(SnapshotFolder(tmp_path, interval_s=0.05, catch_up_s=0.05))
    writer.start()
    try:
        for i in range(30):
            await store(writer, f"question {i}")
        snapshot_file = tmp_path / "semantic-index.gwv"
        await wait_for(lambda: snapshot_file.exists() and Snapshot(snapshot_file).count() == 30)

        late = cache(SnapshotFolder(tmp_path))
        late.start()
        try:
            await wait_for(lambda: late._index is not None and late._index.base is not None)
            assert await ask(late, "paraphrase 3") == "answer to question 3"
            for i in range(30, 40):  # stored after the start: reach the late one through the feed
                await store(writer, f"question {i}")
            await wait_for(lambda: late._index is not None and len(late._index) == 40)
            assert await ask(late, "paraphrase 35") == "answer to question 35"
            # The writer's next snapshots take them in; the late one then keeps nothing of its own.
            await wait_for(lambda: late._index is not None and late._index.sizes() == (0, 40))
            assert await ask(late, "paraphrase 36") == "answer to question 36"
        finally:
            await late.close()
    finally:
        await writer.close()
    assert sorted(os.listdir(tmp_path)) == ["semantic-index.gwv", "semantic-index.lock"], "no temporary file left"


async def test_a_truncated_snapshot_is_skipped_and_replaced(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old, _ = filled(50)
    path = tmp_path / "semantic-index.gwv"
    old.write_snapshot(path, b"0-0", max_graph_adds=0)
    path.write_bytes(path.read_bytes()[:-100])  # cut short: a copy interrupted, a full disk
    responses = shared_cache(
        redis_server.url, SnapshotFolder(tmp_path, interval_s=0.05, catch_up_s=0.05), paraphrases(5)
    )
    with caplog.at_level(logging.WARNING):
        responses.start()
        try:
            for i in range(5):
                await store(responses, f"question {i}")
            assert await ask(responses, "paraphrase 2") == "answer to question 2"
            await wait_for(lambda: responses._index is not None and responses._index.sizes() == (0, 5))
            assert await ask(responses, "paraphrase 4") == "answer to question 4"
        finally:
            await responses.close()
    assert "skipped" in caplog.text
    assert Snapshot(path).count() == 5, "replaced by a whole one"


async def _ready(embedder: TableEmbedder) -> TableEmbedder:
    return embedder


class RecordingFeed:
    """A feed with nothing in it that remembers where it was asked to read from."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def publish(self, item: SharedVector) -> None:
        pass

    async def follow(self, after: str, block_s: float) -> tuple[str, list[SharedVector]]:
        self.asked.append(after)
        await asyncio.sleep(0.01)
        return after, []


async def test_the_feed_is_followed_from_the_position_the_snapshot_covers(tmp_path: Path) -> None:
    writer, _ = filled(10)
    writer.write_snapshot(tmp_path / "semantic-index.gwv", b"1712-3", max_graph_adds=0)
    feed = RecordingFeed()
    responses = ResponseCache(
        CacheConfig(),
        {},
        MemoryBackend(1 << 20),
        load_embedder=None,
        verify=accept_first,
        feed=feed,
        snapshots=SnapshotFolder(tmp_path),
    )
    responses.start()
    try:
        await wait_for(lambda: len(feed.asked) >= 2)
    finally:
        await responses.close()
    assert feed.asked[0] == "1712-3"
    assert responses._index is not None
    assert responses._index.sizes() == (0, 10)


# --- two processes on one state folder ------------------------------------------------------------------------------


class Worker:
    """tests/cache/semantic_worker.py in a process of its own: a gateway process's cache, one command at a time."""

    def __init__(self, redis_url: str, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.cache.semantic_worker", redis_url, str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )

    def send(self, command: dict[str, object]) -> object:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the worker exited ({self.process.poll()})"
        return json.loads(line)

    def until(self, command: dict[str, object], expected: object, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (got := self.send(command)) != expected:
            assert time.monotonic() < deadline, f"{command}: {got!r}, not {expected!r}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.mark.timeout(180)
def test_two_processes_on_one_state_folder_share_one_index(redis_server: RedisServer, tmp_path: Path) -> None:
    first = Worker(redis_server.url, tmp_path)
    second = Worker(redis_server.url, tmp_path)
    try:
        for i in range(20):
            assert first.send({"store": f"question {i}"}) is True
            assert second.send({"store": f"question {20 + i}"}) is True
        # Each serves the other's entries: through the feed first, then through the snapshot one of them writes.
        for worker in (first, second):
            for i in (3, 17, 24, 39):
                worker.until({"ask": f"paraphrase {i}"}, f"answer to question {i}")
        # Both come to search the one mapped file, keeping nothing of their own.
        for worker in (first, second):
            worker.until({"sizes": None}, [0, 40])
        # The writer is killed: the lock passes to the survivor, whose next snapshot takes what came after.
        holds = [_holds_lock(worker, tmp_path) for worker in (first, second)]
        assert sorted(holds) == [False, True], "one writer"
        lock_holder = first if holds[0] else second
        survivor = second if lock_holder is first else first
        lock_holder.stop()
        for i in range(40, 45):
            assert survivor.send({"store": f"question {i}"}) is True
        survivor.until({"sizes": None}, [0, 45])
        assert Snapshot(tmp_path / "semantic-index.gwv").count() == 45
        # A process starting now maps it, and answers from it at once.
        late = Worker(redis_server.url, tmp_path)
        try:
            late.until({"sizes": None}, [0, 45])
            assert late.send({"ask": "paraphrase 42"}) == "answer to question 42"
        finally:
            late.stop()
    finally:
        first.stop()
        second.stop()
    assert sorted(os.listdir(tmp_path)) == ["semantic-index.gwv", "semantic-index.lock"], "no temporary file left"


def _holds_lock(worker: Worker, folder: Path) -> bool:
    """Whether the worker's process holds the folder's lock file (from /proc/locks: the flock's owner pid)."""
    inode = os.stat(folder / "semantic-index.lock").st_ino
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()  # id: FLOCK ADVISORY WRITE pid major:minor:inode start end
            if fields[1] == "FLOCK" and int(fields[4]) == worker.process.pid and int(fields[5].split(":")[2]) == inode:
                return True
    return False
