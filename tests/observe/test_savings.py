"""Savings arithmetic, exact: every expected figure is worked out by hand in Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.config.schema import ModelConfig
from gateway.observe.savings import UsageGroup, cheapest_alternatives, price_usd, total_saving

BIG = ModelConfig(
    name="big",
    provider="p",
    input_cost_per_mtok=3.0,
    output_cost_per_mtok=15.0,
    cached_input_cost_per_mtok=0.3,
    capabilities=frozenset({"streaming", "tools", "images", "json_mode"}),
    context_window=200_000,
)
MID = ModelConfig(
    name="mid",
    provider="p",
    input_cost_per_mtok=0.4,
    output_cost_per_mtok=1.6,
    capabilities=frozenset({"streaming", "tools", "json_mode"}),
    context_window=128_000,
)
SMALL = ModelConfig(
    name="small",
    provider="p",
    input_cost_per_mtok=0.15,
    output_cost_per_mtok=0.6,
    capabilities=frozenset({"streaming"}),
    context_window=16_000,
)
MODELS = [BIG, MID, SMALL]


def _group(model: str = "big", **kw: object) -> UsageGroup:
    fields: dict[str, object] = {
        "team": "search",
        "model": model,
        "route": "smart/long",
        "requests": 100,
        "prompt_tokens": 1_000_000,
        "completion_tokens": 200_000,
        "cost_usd": Decimal("6"),
    }
    fields.update(kw)
    return UsageGroup(**fields)  # type: ignore[arg-type]


def test_price_is_exact_and_bills_cached_tokens_at_the_cached_price() -> None:
    # 1.1M prompt of which 0.1M cached, 0.2M completion on big: 1.0 * 3 + 0.1 * 0.3 + 0.2 * 15 = 6.03.
    assert price_usd(BIG, 1_100_000, 200_000, 100_000) == Decimal("6.03")
    # No cached price: cached tokens bill at the input price. 1 * 0.4 + 0.2 * 1.6 = 0.72.
    assert price_usd(MID, 1_000_000, 200_000, 300_000) == Decimal("0.72")
    # Cached beyond the prompt counts as the prompt. 7 tokens at 0.15/M = 0.00000105.
    assert price_usd(SMALL, 7, 0, 50) == Decimal("0.00000105")


def test_the_cheapest_model_with_the_needed_capabilities_is_chosen() -> None:
    tools = _group(needs=frozenset({"tools"}))
    plain = _group(needs=frozenset({"streaming"}))
    images = _group(needs=frozenset({"images", "tools"}))
    saved = cheapest_alternatives([tools, plain, images], MODELS)

    assert saved[0].cheapest_model == "mid"
    assert saved[0].cheapest_cost_usd == Decimal("0.72")  # 1 * 0.4 + 0.2 * 1.6
    assert saved[0].saving_usd == Decimal("5.28")  # 6 - 0.72
    assert saved[0].list_cost_usd == Decimal("6")  # 1 * 3 + 0.2 * 15

    assert saved[1].cheapest_model == "small"
    assert saved[1].cheapest_cost_usd == Decimal("0.27")  # 1 * 0.15 + 0.2 * 0.6
    assert saved[1].saving_usd == Decimal("5.73")

    # Only big has images: no saving.
    assert saved[2].cheapest_model == "big"
    assert saved[2].saving_usd == Decimal(0)

    assert total_saving(saved) == Decimal("11.01")


def test_unknown_needs_default_to_the_served_models_capabilities() -> None:
    [saving] = cheapest_alternatives([_group("mid", cost_usd=Decimal("0.72"))], MODELS)
    assert saving.needs == MID.capabilities
    # big has them too but costs more; small lacks tools: mid itself is the cheapest, nothing to save.
    assert saving.cheapest_model == "mid"
    assert saving.saving_usd == Decimal(0)


def test_the_context_window_must_hold_the_largest_prompt() -> None:
    group = _group(needs=frozenset({"streaming"}), max_prompt_tokens=20_000)
    [saving] = cheapest_alternatives([group], MODELS)
    assert saving.cheapest_model == "mid"  # small's 16k window is too small


def test_a_billed_cost_below_the_cheapest_saves_nothing_and_unknown_models_are_reported() -> None:
    [cheap, unknown, impossible] = cheapest_alternatives(
        [
            _group("small", cost_usd=Decimal("0.1")),
            _group("retired", needs=frozenset({"streaming"})),
            _group(needs=frozenset({"images"}), max_prompt_tokens=500_000),
        ],
        MODELS,
    )
    assert cheap.saving_usd == Decimal(0)
    assert unknown.list_cost_usd is None
    assert unknown.cheapest_model == "small"
    assert unknown.saving_usd == Decimal("5.73")
    assert impossible.cheapest_model is None
    assert impossible.cheapest_cost_usd is None
    assert impossible.saving_usd == Decimal(0)


def test_ties_go_to_the_model_listed_first() -> None:
    twin = MID.model_copy(update={"name": "mid-twin"})
    [saving] = cheapest_alternatives([_group(needs=frozenset({"tools"}))], [BIG, twin, MID])
    assert saving.cheapest_model == "mid-twin"


@pytest.mark.parametrize("price", [0.1, 0.2, 0.3, 1.1, 2.675])
def test_float_prices_become_their_decimal_repr(price: float) -> None:
    model = ModelConfig(name="x", provider="p", input_cost_per_mtok=price, output_cost_per_mtok=0)
    assert price_usd(model, 3_000_000, 0) == Decimal(str(price)) * 3
