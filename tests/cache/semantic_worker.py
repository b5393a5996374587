"""A gateway process's response cache, on Redis and a shared state folder, driven line by line from stdin: what
test_semantic_index.py runs twice to see two processes share one semantic index.

    python -m tests.cache.semantic_worker REDIS_URL FOLDER

Each stdin line is JSON, one command, answered by one JSON line on stdout:
    {"store": "question 3"}   stores an answer ("answer to question 3") for that prompt -> true
    {"ask": "paraphrase 3"}   a semantic lookup -> the answer's text, or null on a miss
    {"sizes": null}           -> [entries in this process's own layer, entries in the mapped snapshot]
The embedder maps "question i" and "paraphrase i" near each other, the same in every process.
"""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gateway.cache.backends.redis import RedisBackend
from gateway.cache.semantic_index import Candidate, SnapshotFolder
from gateway.cache.service import CachePlan, ResponseCache
from gateway.chat import ChatRequest, ChatResult, Message, Usage
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.records.classification import Classification

if TYPE_CHECKING:
    from gateway.cache.service import Vector

DIM = 16


def unit(seed: int) -> Vector:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    out: Vector = v / np.linalg.norm(v)
    return out


class Embedder:
    """Deterministic across processes (str hashes are not): "paraphrase i" lies at cosine ~0.99 to "question i"."""

    dim = DIM

    async def embed(self, text: str) -> Vector:
        kind, _, number = text.partition(" ")
        if kind in ("question", "paraphrase") and number.isdigit():
            base = unit(int(number))
            if kind == "question":
                return base
            noisy = base + 0.05 * unit(100_000 + int(number))
            out: Vector = (noisy / np.linalg.norm(noisy)).astype(np.float32)
            return out
        return unit(1_000_000 + zlib.crc32(text.encode()))

    async def close(self) -> None:
        pass


async def _embedder() -> Embedder:
    return Embedder()


def accept_first(asked: str, candidates: Sequence[Candidate]) -> tuple[Candidate | None, list[str]]:
    return (candidates[0] if candidates else None), []


def _plan(responses: ResponseCache, text: str) -> CachePlan:
    chat = ChatRequest("gpt", [Message("user", text)])
    plan = responses.plan(chat, "team", "gpt", classification=Classification.PUBLIC)
    assert plan is not None
    return plan


async def main(redis_url: str, folder: Path) -> None:
    backend = RedisBackend(redis_url, prefix="test:", timeout_s=1.0)
    responses = ResponseCache(
        CacheConfig(backend="redis", similarity_threshold=0.8),
        {"gpt": CachePolicyConfig(semantic=True, ttl_s=600)},
        backend,
        load_embedder=_embedder,
        verify=accept_first,
        feed=backend,
        snapshots=SnapshotFolder(folder, interval_s=0.05, catch_up_s=0.05),
    )
    responses.start()
    loop = asyncio.get_running_loop()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            answer: object
            if "store" in command:
                text = command["store"]
                result = ChatResult("", "gpt-4o", f"answer to {text}", "stop", Usage(5, 5))
                plan = _plan(responses, text)
                answer = await responses.store(plan, result, Usage(5, 5), served_model="gpt", provider="x", cost_usd=0)
            elif "ask" in command:
                hit = await responses.lookup(_plan(responses, command["ask"]))
                answer = hit.entry.text if hit is not None else None
            else:
                index = responses._index
                answer = list(index.sizes()) if index is not None else None
            print(json.dumps(answer), flush=True)
    finally:
        await responses.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
