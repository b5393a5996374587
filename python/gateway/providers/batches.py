"""Embedding inputs beyond what one upstream request may carry: split into the provider's batches, sent concurrently
(a bounded number at a time), and put back together in the inputs' order."""

from __future__ import annotations

import asyncio
import dataclasses

from gateway.config.schema import ModelConfig
from gateway.embeddings import EmbedRequest, EmbedResult, Vector
from gateway.providers.base import Provider, UpstreamCall

CONCURRENT_BATCHES = 4
"""Batches of one call in flight at once: enough to hide a round trip, few enough not to spend a provider's rate
limit (or a deployment's quota) on one caller's burst."""


def batch_size(provider: Provider, model: ModelConfig) -> int:
    """Inputs per upstream request: the model's max_batch_inputs, within the provider's own limit for the model."""
    limit = provider.embed_batch_for(model)
    return min(model.max_batch_inputs, limit) if model.max_batch_inputs is not None and limit else limit


def split(count: int, size: int) -> list[range]:
    """The inputs' positions in consecutive batches of at most `size`."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


async def embed_all(
    provider: Provider,
    request: EmbedRequest,
    model: ModelConfig,
    call: UpstreamCall,
    *,
    concurrency: int = CONCURRENT_BATCHES,
) -> EmbedResult:
    """Every input's vector from one provider, in order. The first batch that fails cancels the others and its
    error is raised: a call's vectors all come from one target, never from two."""
    batches = split(len(request.inputs), batch_size(provider, model) or len(request.inputs))
    if len(batches) == 1:
        return await provider.embed(request, model, call)
    gate = asyncio.Semaphore(concurrency)

    async def one(positions: range) -> EmbedResult:
        async with gate:
            part = dataclasses.replace(request, inputs=request.inputs[positions.start : positions.stop])
            return await provider.embed(part, model, call)

    tasks = [asyncio.ensure_future(one(positions)) for positions in batches]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    results = [task.result() for task in tasks]
    vectors: list[Vector] = [v for result in results for v in result.vectors]
    reported = [r.prompt_tokens for r in results]
    return EmbedResult(
        upstream_model=results[0].upstream_model,
        vectors=vectors,
        prompt_tokens=None if None in reported else sum(r or 0 for r in reported),
    )
