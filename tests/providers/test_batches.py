"""Embedding inputs split into a provider's batches and put back in order, with a bounded number in flight; the
first batch that fails ends the whole attempt."""

from __future__ import annotations

import asyncio

import pytest

from gateway.config.schema import ModelConfig, ProviderConfig
from gateway.embeddings import EmbedRequest, EmbedResult, vector
from gateway.errors import ProviderError
from gateway.providers.base import Provider, UpstreamCall
from gateway.providers.batches import batch_size, embed_all, split


class Counting(Provider):
    """Embeds a text as [its position in the call's inputs]; fails on the batch starting with `fail_at`."""

    embed_batch = 4

    def __init__(self, fail_at: str | None = None) -> None:
        super().__init__(ProviderConfig(name="counting", type="simulated"))
        self.fail_at = fail_at
        self.in_flight = 0
        self.most_in_flight = 0
        self.cancelled = 0

    async def chat(self, *args: object) -> object:  # type: ignore[override]
        raise NotImplementedError

    def stream(self, *args: object) -> object:  # type: ignore[override]
        raise NotImplementedError

    async def embed(self, request: EmbedRequest, model: ModelConfig, call: UpstreamCall) -> EmbedResult:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if request.inputs[0] == self.fail_at:
                raise ProviderError("batch failed", provider=self.name)
            await asyncio.sleep(0.01 if request.inputs[0] != "t0" else 0.2)
            return EmbedResult("m", [vector([float(t[1:])]) for t in request.inputs], len(request.inputs))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


MODEL = ModelConfig(name="e", provider="counting", kind="embedding", dimensions=1)


def test_split_covers_every_position_once() -> None:
    assert split(10, 4) == [range(4), range(4, 8), range(8, 10)]
    assert split(3, 4) == [range(3)]
    assert batch_size(Counting(), MODEL) == 4
    assert batch_size(Counting(), MODEL.model_copy(update={"max_batch_inputs": 2})) == 2


async def test_vectors_come_back_in_order_with_bounded_concurrency() -> None:
    provider = Counting()
    texts = [f"t{i}" for i in range(30)]
    result = await embed_all(provider, EmbedRequest("e", texts), MODEL, UpstreamCall("r"), concurrency=3)
    assert [v[0] for v in result.vectors] == [float(i) for i in range(30)]
    assert result.prompt_tokens == 30
    assert provider.most_in_flight == 3


async def test_a_failed_batch_cancels_the_others() -> None:
    provider = Counting(fail_at="t4")
    texts = [f"t{i}" for i in range(12)]
    with pytest.raises(ProviderError, match="batch failed"):
        await embed_all(provider, EmbedRequest("e", texts), MODEL, UpstreamCall("r"))
    assert provider.cancelled >= 1  # the slow first batch did not run on
    assert provider.in_flight == 0
