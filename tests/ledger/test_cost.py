"""Cost arithmetic: what a call's usage costs, and the estimate a budget reserves before the call.

Expected figures are written as the arithmetic a person would do; they equal the gateway's to the last few bits."""

from __future__ import annotations

import pytest

from gateway.chat import Usage
from gateway.config.schema import ModelConfig, ModelKind
from gateway.ledger.cost import Estimate, cost_usd, estimate
from gateway.records.prices import Prices


def model(name: str, input_: float, output: float, cached: float | None = None, max_output: int = 4096) -> ModelConfig:
    return ModelConfig(
        name=name,
        provider="p",
        input_cost_per_mtok=input_,
        output_cost_per_mtok=output,
        cached_input_cost_per_mtok=cached,
        max_output_tokens=max_output,
    )


def BASE(m: ModelConfig) -> Prices:  # noqa: N802 - reads as the constant it stands for
    return m.schedule.base


def exactly(usd: float) -> object:
    return pytest.approx(usd, rel=1e-12, abs=0)


def test_cached_prompt_tokens_bill_at_the_cached_price_and_the_rest_at_the_input_price() -> None:
    priced = model("m", 4.0, 16.0, cached=1.0)
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=200)
    assert cost_usd(usage, priced.schedule.base) == exactly((800 * 4.0 + 200 * 1.0 + 100 * 16.0) / 1e6)


def test_without_a_cached_price_cached_prompt_tokens_bill_at_the_input_price() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_prompt_tokens=200)
    assert cost_usd(usage, model("m", 4.0, 16.0).schedule.base) == exactly((1000 * 4.0 + 100 * 16.0) / 1e6)


def test_a_free_cached_price_is_a_price_not_a_missing_one() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_prompt_tokens=1000)
    assert cost_usd(usage, model("m", 4.0, 16.0, cached=0.0).schedule.base) == 0.0


def test_cached_tokens_reported_above_the_prompt_bill_no_more_than_the_prompt() -> None:
    """A provider that reports more cached tokens than prompt tokens never makes a call cost less than nothing for
    its prompt, nor bills cached tokens it did not read."""
    usage = Usage(prompt_tokens=100, completion_tokens=0, cached_prompt_tokens=300)
    assert cost_usd(usage, model("m", 4.0, 16.0, cached=1.0).schedule.base) == exactly(100 * 1.0 / 1e6)


def test_the_estimate_is_the_prompt_plus_max_tokens_at_the_dearest_candidate() -> None:
    cheap = model("cheap", 1.0, 2.0)
    dear_output = model("dear-output", 2.0, 64.0)
    dear_input = model("dear-input", 128.0, 4.0)
    counted = {"cheap": 1000, "dear-output": 1000, "dear-input": 1500}
    found = estimate([cheap, dear_output, dear_input], lambda m: counted[m.name], max_tokens=500, price=BASE)
    assert found == Estimate(tokens=2000, cost_usd=max(1000 * 2.0 + 500 * 64.0, 1500 * 128.0 + 500 * 4.0) / 1e6)
    assert found.cost_usd == (1500 * 128.0 + 500 * 4.0) / 1e6


def test_without_max_tokens_the_estimate_takes_each_models_output_limit() -> None:
    short = model("short", 1.0, 8.0, max_output=100)
    long = model("long", 1.0, 2.0, max_output=1000)
    found = estimate([short, long], lambda _: 50, max_tokens=None, price=BASE)
    assert found == Estimate(tokens=1050, cost_usd=(50 * 1.0 + 1000 * 2.0) / 1e6)


def test_no_candidate_costs_nothing() -> None:
    assert estimate([], lambda _: 10, max_tokens=10, price=BASE) == Estimate(0, 0.0)


def test_an_embedding_estimate_is_its_inputs_alone_whatever_max_tokens_says() -> None:
    embedder = ModelConfig(
        name="embed", provider="p", kind=ModelKind.EMBEDDING, dimensions=8, input_cost_per_mtok=0.5,
        output_cost_per_mtok=100.0,
    )  # fmt: skip
    chat = model("chat", 1.0, 2.0, max_output=100)
    assert estimate([embedder], lambda _: 400, max_tokens=50, price=BASE) == Estimate(
        tokens=400, cost_usd=400 * 0.5 / 1e6
    )
    assert estimate([embedder, chat], lambda _: 400, max_tokens=None, price=BASE) == Estimate(
        500, (400 * 1.0 + 100 * 2.0) / 1e6
    )
