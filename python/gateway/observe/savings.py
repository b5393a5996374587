"""Savings: what each team x model x route rule group would have cost on the cheapest configured model that meets
the same capability needs, for `Insights.GetAnalytics`.

Pure arithmetic on usage rows and the model catalogue. Money is `Decimal`, built from each price's shortest repr
(`Decimal(str(0.15)) == Decimal("0.15")`), so sums are exact and the report adds up to the cent it shows. Prices are
the models' list prices (`input_cost_per_mtok`, `output_cost_per_mtok`, `cached_input_cost_per_mtok`); a
deployment's own price is not used for the alternative, because the report asks which model, not which deployment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from gateway.config.schema import ModelConfig

MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """One group's usage over the report's range, as the ledger sums it."""

    team: str
    model: str
    """The model that served (the catalogue's name)."""
    route: str
    """The route rule (gateway.observe.drift.route_rule_label), or the route."""
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    """What the group was billed."""
    cached_tokens: int = 0
    needs: frozenset[str] | None = None
    """Capabilities the calls needed (streaming, tools, images, json_mode); None: those of the model that served,
    the safe assumption when the ledger did not record what the calls used."""
    max_prompt_tokens: int = 0
    """The group's largest prompt: an alternative's context window must hold it."""


@dataclass(frozen=True, slots=True)
class Saving:
    group: UsageGroup
    needs: frozenset[str]
    list_cost_usd: Decimal | None
    """The served model's list price on the group's tokens; None when the model is not in the catalogue."""
    cheapest_model: str | None
    """The cheapest model meeting the needs (the served one when nothing is cheaper); None when none does."""
    cheapest_cost_usd: Decimal | None
    saving_usd: Decimal
    """cost_usd - cheapest_cost_usd, never below zero."""


def price_usd(model: ModelConfig, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Decimal:
    """Cost of these tokens at the model's list prices; cached prompt tokens at the cached price where set, as
    gateway.ledger.cost.cost_usd bills them."""
    cached = min(cached_tokens, prompt_tokens)
    input_price = _money(model.input_cost_per_mtok)
    cached_price = input_price if model.cached_input_cost_per_mtok is None else _money(model.cached_input_cost_per_mtok)
    return (
        (prompt_tokens - cached) * input_price
        + cached * cached_price
        + completion_tokens * _money(model.output_cost_per_mtok)
    ) / MILLION


def cheapest_alternatives(groups: Iterable[UsageGroup], models: Sequence[ModelConfig]) -> list[Saving]:
    """For each group, the cheapest of `models` that has every capability the group needs and a context window that
    holds its largest prompt, priced on the group's tokens. Ties go to the model listed first."""
    by_name = {m.name: m for m in models}
    out: list[Saving] = []
    for group in groups:
        served = by_name.get(group.model)
        needs = group.needs if group.needs is not None else (served.capabilities if served is not None else frozenset())
        list_cost = (
            price_usd(served, group.prompt_tokens, group.completion_tokens, group.cached_tokens)
            if served is not None
            else None
        )
        best: tuple[Decimal, str] | None = None
        for model in models:
            if not needs <= model.capabilities or model.context_window < group.max_prompt_tokens:
                continue
            cost = price_usd(model, group.prompt_tokens, group.completion_tokens, group.cached_tokens)
            if best is None or cost < best[0]:
                best = (cost, model.name)
        if best is None:
            out.append(Saving(group, needs, list_cost, None, None, Decimal(0)))
            continue
        saving = max(group.cost_usd - best[0], Decimal(0))
        out.append(Saving(group, needs, list_cost, best[1], best[0], saving))
    return out


def total_saving(savings: Iterable[Saving]) -> Decimal:
    return sum((s.saving_usd for s in savings), Decimal(0))


def _money(price_per_mtok: float) -> Decimal:
    return Decimal(str(price_per_mtok))
