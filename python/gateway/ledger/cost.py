"""Cost arithmetic from the config's price table (US dollars per million tokens)."""

from __future__ import annotations

from gateway.chat import Usage
from gateway.config.schema import ModelConfig

_PER_TOKEN = 1e-6


def cost_usd(usage: Usage, model: ModelConfig) -> float:
    """Cached prompt tokens bill at the cached-input price where one is configured, else at the input price."""
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    cached_price = model.cached_input_cost_per_mtok
    if cached_price is None:
        cached_price = model.input_cost_per_mtok
    return _PER_TOKEN * (
        (usage.prompt_tokens - cached) * model.input_cost_per_mtok
        + cached * cached_price
        + usage.completion_tokens * model.output_cost_per_mtok
    )
