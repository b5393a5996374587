"""Embeddings for asyncio callers: one dedicated thread runs the model, and concurrent requests share its batches.

No request waits for company: when the thread is idle the first text starts at once, alone. Texts that arrive while
a batch runs queue up and form the next batch (at most `max_batch`), so under load the model runs batches of the
texts that piled up during one forward pass. A batch of 8 short prompts costs ~2-3x one prompt on 2 cores, not 8x.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

MAX_BATCH: Final = 16


class EmbedsTexts(Protocol):
    """What the batcher runs: `Embedder`, or a fake in tests."""

    def embed(self, texts: list[str]) -> np.ndarray: ...


class EmbedderClosed(RuntimeError):
    """embed() was called, or was still waiting in the queue, when the batcher closed."""


@dataclass(slots=True)
class _Request:
    text: str
    answer: asyncio.Future[np.ndarray]


class BatchingEmbedder:
    """`await embed(text)` from any number of tasks of one event loop; the model never runs on the loop thread."""

    def __init__(self, embedder: EmbedsTexts, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._embedder = embedder
        self._max_batch = max_batch
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._queue: deque[_Request] = deque()
        self._running = False
        self._closed = False
        self.batches = 0
        """Forward passes run so far (a test and a metric can tell batching happened)."""

    async def embed(self, text: str) -> np.ndarray:
        """The (384,) unit float32 vector of `text`. The model's exceptions are raised here, to every caller of
        the batch that failed."""
        if self._closed:
            raise EmbedderClosed("embed() after close()")
        answer: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(text, answer))
        if not self._running:
            self._start_batch()
        return await answer

    def close(self) -> None:
        """Fails queued requests with EmbedderClosed and stops the thread after the batch in flight (whose callers
        still get their vectors)."""
        self._closed = True
        while self._queue:
            request = self._queue.popleft()
            if not request.answer.done():
                request.answer.set_exception(EmbedderClosed("the embedder closed before this text was embedded"))
        self._thread.shutdown(wait=False)

    def _start_batch(self) -> None:
        # Runs on the loop thread only (from embed() and from the previous batch's done-callback), so the queue and
        # the flag need no lock. Callers that were cancelled while queued are dropped, not embedded.
        batch: list[_Request] = []
        while self._queue and len(batch) < self._max_batch:
            request = self._queue.popleft()
            if not request.answer.done():
                batch.append(request)
        if not batch:
            self._running = False
            return
        self._running = True
        self.batches += 1
        loop = asyncio.get_running_loop()
        texts = [r.text for r in batch]
        running = loop.run_in_executor(self._thread, self._embedder.embed, texts)
        running.add_done_callback(lambda done: self._finish_batch(batch, done))

    def _finish_batch(self, batch: list[_Request], done: asyncio.Future[np.ndarray]) -> None:
        outcome = _vectors_or_error(done, len(batch))
        for i, request in enumerate(batch):
            if request.answer.done():  # its caller gave up meanwhile
                continue
            if isinstance(outcome, BaseException):
                request.answer.set_exception(outcome)
            else:
                request.answer.set_result(outcome[i])
        if self._closed:
            self._running = False
            return
        self._start_batch()


def _vectors_or_error(done: asyncio.Future[np.ndarray], texts: int) -> np.ndarray | BaseException:
    if done.cancelled():
        return EmbedderClosed("the embedding thread stopped")
    error = done.exception()
    if error is not None:
        return error
    vectors = done.result()
    if vectors.shape[0] != texts:
        return RuntimeError(f"the embedder answered {vectors.shape[0]} vectors for {texts} texts")
    return vectors
