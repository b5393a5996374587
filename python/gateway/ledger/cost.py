"""Cost arithmetic from the config's price table (US dollars per million tokens), at the prices in force when a call
runs (records/prices.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.chat import Usage
from gateway.config.schema import ModelConfig, ModelKind
from gateway.records.prices import Prices

_PER_TOKEN = 1e-6


def cost_usd(usage: Usage, prices: Prices) -> float:
    """Cached prompt tokens bill at the cached-input price where one is configured, else at the input price."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    return _PER_TOKEN * (
        (usage.prompt_tokens - cached) * prices.input_per_mtok
        + cached * prices.effective_cached_per_mtok
        + usage.completion_tokens * prices.output_per_mtok
    )


def uncached_cost_usd(usage: Usage, prices: Prices) -> float:
    """What the usage costs with every prompt token at the input price: a deferred call's cost had its shared
    prefix not been read from the provider's prompt cache."""
    return _PER_TOKEN * (usage.prompt_tokens * prices.input_per_mtok + usage.completion_tokens * prices.output_per_mtok)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The most a call may take: its tokens (for tokens-per-minute limits) and its cost (for budgets)."""

    tokens: int
    cost_usd: float


def estimate(
    models: Iterable[ModelConfig],
    prompt_tokens: Callable[[ModelConfig], int],
    max_tokens: int | None,
    price: Callable[[ModelConfig], Prices],
) -> Estimate:
    """The counted prompt plus max_tokens (the model's output limit when unset), priced (`price`: the prices in force
    when the call runs, or for a call that may wait the dearest of the day) at the dearest of the models that may
    serve the call, so the real cost settles at or under it whichever serves, as long as the provider bills no more
    prompt tokens than the gateway counted."""
    tokens = 0
    cost = 0.0
    for model in models:
        prompt = prompt_tokens(model)
        if model.kind is ModelKind.EMBEDDING:
            answer = 0  # an embedding bills its inputs only
        else:
            answer = max_tokens if max_tokens is not None else model.max_output_tokens
        prices = price(model)
        tokens = max(tokens, prompt + answer)
        cost = max(cost, (prompt * prices.input_per_mtok + answer * prices.output_per_mtok) / 1e6)
    return Estimate(tokens, cost)


BATCH_DISCOUNT = 0.5
"""A batch price left unset is this share of the interactive one: OpenAI's, Anthropic's and Gemini's batch APIs all
charge half."""


def batch_prices(model: ModelConfig) -> tuple[float, float]:
    """(input, output) US dollars per million tokens of a batch item: the model's fixed batch prices, outside any
    time-of-day schedule."""
    given_in, given_out = model.batch_input_cost_per_mtok, model.batch_output_cost_per_mtok
    return (
        model.input_cost_per_mtok * BATCH_DISCOUNT if given_in is None else given_in,
        model.output_cost_per_mtok * BATCH_DISCOUNT if given_out is None else given_out,
    )


def batch_cost_usd(usage: Usage, model: ModelConfig) -> float:
    """A batch item's cost. Cached prompt tokens bill at the batch input price too: the batch price is the one the
    providers' batch discounts replace the others with."""
    input_price, output_price = batch_prices(model)
    return _PER_TOKEN * (usage.prompt_tokens * input_price + usage.completion_tokens * output_price)
