"""Query-type clusters (learning/clusters.py): online mini-batch k-means on synthetic embedding groups, seeded and
repeatable, with ids that survive a restart and are the same in every process that reads the writer's centers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.config.loader import parse_config
from gateway.learning.clusters import SEEDING_PER_CLUSTER, ClusterBook, ClusterState, RouteClusters
from gateway.routing.catalog import ModelCatalog
from gateway.routing.health import HealthBoard
from gateway.routing.router import Router

DIM = 48


def groups(count: int, per_group: int, seed: int, spread: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """`count` groups of unit vectors around random directions, shuffled: (vectors, group of each)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((count, DIM))
    labels = np.repeat(np.arange(count), per_group)
    vectors = centers[labels] / np.linalg.norm(centers[labels], axis=1, keepdims=True)
    vectors = vectors + rng.standard_normal(vectors.shape) * spread / np.sqrt(DIM)
    order = rng.permutation(len(labels))
    return vectors[order].astype(np.float32), labels[order]


def test_clusters_separate_groups_of_embeddings() -> None:
    vectors, labels = groups(count=4, per_group=400, seed=1)
    clusters = RouteClusters(k=6, seed=0)
    assigned = [clusters.assign(v) for v in vectors]
    warmup = SEEDING_PER_CLUSTER * 6
    assert assigned[: warmup - 1] == [None] * (warmup - 1)  # no cluster until the centers are seeded
    assert all(a is not None for a in assigned[warmup:])
    # Once seeded, every cluster holds one group only, and every group has a cluster of its own.
    final = [clusters.assign(v) for v in vectors]
    by_cluster: dict[int | None, set[int]] = {}
    for cluster, label in zip(final, labels, strict=True):
        by_cluster.setdefault(cluster, set()).add(int(label))
    assert all(len(members) == 1 for members in by_cluster.values()), by_cluster
    assert set().union(*by_cluster.values()) == {0, 1, 2, 3}
    assert all(0 <= c < 6 for c in by_cluster if c is not None)


def test_the_same_seed_gives_the_same_clusters_and_ids() -> None:
    vectors, _ = groups(count=3, per_group=200, seed=2)
    runs = []
    for _ in range(2):
        clusters = RouteClusters(k=4, seed=7)
        runs.append([clusters.assign(v) for v in vectors])
    assert runs[0] == runs[1]
    other = RouteClusters(k=4, seed=8)
    assert [other.assign(v) for v in vectors] != runs[0]  # the seed matters: the test above can fail


def test_ids_survive_a_restart_and_a_reader_assigns_as_the_writer() -> None:
    vectors, _ = groups(count=3, per_group=200, seed=3)
    writer = RouteClusters(k=3, seed=0)
    for v in vectors:
        writer.assign(v)
    assert writer.state is not None
    stored = ClusterState.from_bytes(writer.state.to_bytes())
    assert stored.version == writer.state.version
    assert np.array_equal(stored.centers, writer.state.centers)
    reader = RouteClusters(k=3, seed=99)
    reader.learning = False
    reader.adopt(stored)
    before = [writer.assign(v) for v in vectors[:60]]  # under one batch: the writer's centers stay as stored
    assert [reader.assign(v) for v in vectors[:60]] == before
    assert reader.state is stored  # a reader never moves the centers
    with pytest.raises(ValueError, match="not a stored cluster state"):
        ClusterState.from_bytes(b"gwqc" + stored.to_bytes()[4:-1])


def test_a_changed_embedding_model_starts_the_clusters_again() -> None:
    vectors, _ = groups(count=2, per_group=100, seed=4)
    clusters = RouteClusters(k=2, seed=0)
    for v in vectors:
        clusters.assign(v)
    assert clusters.assign(vectors[0]) is not None
    assert clusters.assign(np.ones(DIM * 2, dtype=np.float32)) is None  # another length: learned afresh
    assert clusters.state is None
    reader = RouteClusters(k=2, seed=0)
    reader.learning = False
    reader.adopt(ClusterState(1, np.eye(2, DIM, dtype=np.float32), np.ones(2)))
    assert reader.assign(np.ones(DIM * 2, dtype=np.float32)) is None  # the writer's model is another: no cluster


def test_a_book_without_a_store_learns_alone_and_knows_only_its_routes() -> None:
    book = ClusterBook({"smart": (2, 0)})
    vectors, _ = groups(count=2, per_group=50, seed=5)
    assert [book.assign("smart", v) for v in vectors][-1] is not None
    assert book.assign("other", vectors[0]) is None


def test_routes_that_ask_for_the_prompts_embedding(tmp_path: Path) -> None:
    """Before routing, a call is embedded only for a learned route with the cluster feature, or a rules route that
    may send it to one (its rules run after)."""
    config = parse_config(
        """
providers: [{name: sim, type: simulated}]
models: [{name: a, provider: sim}, {name: b, provider: sim}]
feedback: {metrics: [{name: thumbs, type: boolean}]}
routes:
  - name: typed
    strategy: learned
    targets: [{model: a}, {model: b}]
    learned: {quality: thumbs, features: [tokens, cluster]}
  - name: always
    strategy: learned
    targets: [{model: a}, {model: b}]
    learned: {quality: thumbs, features: [cluster], clusters: {embed_always: true}}
  - {name: plain, strategy: learned, targets: [{model: a}, {model: b}], learned: {quality: thumbs}}
  - name: front
    strategy: rules
    rules: [{name: long, when: {min_prompt_tokens: 100}, target: typed}]
    default: a
  - {name: other, strategy: rules, rules: [{name: long, when: {min_prompt_tokens: 100}, target: plain}], default: a}
"""
    )
    catalog = ModelCatalog.from_config(config, tmp_path)
    router = Router(catalog, HealthBoard(config.circuit_breaker))
    asked = {name: router.embedding_asked(name) for name in ("typed", "always", "plain", "front", "other", "a")}
    assert asked == {"typed": False, "always": True, "plain": None, "front": False, "other": None, "a": None}
