"""Relationships between what calls are and how they went, per model: effect sizes with their sample counts, and
the types of calls a cheaper model handles as well. Associations in the log, not causes: a model that got the harder
calls looks worse whatever it is.

Pure: the facts of calls in, figures out (insights/operations.py reads the facts from the audit log).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.learning.query_types import token_bucket

MIN_GROUP = 5
"""Calls a group needs to be shown: fewer say nothing."""
MARGIN = 0.05
"""A cheaper model handles a type as well when its quality is at most this much lower (lower bound of the 95%
interval of the difference), on feedback."""
SIMILAR = 0.8
"""...or, without feedback, when its shadowed answers' mean similarity to the served model's is at least this (lower
bound of the 95% interval)."""
Z_95 = 1.959964


@dataclass(frozen=True, slots=True)
class CallFacts:
    model: str
    """The model that served."""
    at: float
    prompt_tokens: int
    query_type: str
    """The learned route's type of the call; empty for calls of other routes."""
    latency_ms: float
    cost_usd: float
    quality: float | None
    """Feedback on the chosen metric scaled to [0, 1] (the mean over sources); None without."""


def _hour(call: CallFacts) -> str | None:
    start = time.gmtime(call.at).tm_hour // 6 * 6
    return f"{start:02d}-{start + 6:02d} UTC"


def _language(call: CallFacts) -> str | None:
    return next((part[5:] for part in call.query_type.split() if part.startswith("lang=")), None)


FEATURES: dict[str, Callable[[CallFacts], str | None]] = {
    "hour": _hour,
    "prompt_tokens": lambda call: token_bucket(call.prompt_tokens),
    "language": _language,
    "query_type": lambda call: call.query_type or None,
}
OUTCOMES: dict[str, Callable[[CallFacts], float | None]] = {
    "quality": lambda call: call.quality,
    "latency_ms": lambda call: call.latency_ms,
    "cost_usd": lambda call: call.cost_usd,
}


@dataclass(frozen=True, slots=True)
class Group:
    value: str
    calls: int
    mean: float
    effect: float
    """Cohen's d against the model's other calls: the difference of means in pooled standard deviations (0.2 is
    small, 0.5 medium, 0.8 large); 0 when neither side varies."""


@dataclass(frozen=True, slots=True)
class Relationship:
    model: str
    feature: str
    outcome: str
    calls: int
    eta_squared: float
    """The share of the outcome's variance that the feature's groups account for (0 to 1)."""
    groups: list[Group]


def relationships(calls: Iterable[CallFacts]) -> list[Relationship]:
    """Per model, feature and outcome with at least two groups of MIN_GROUP calls."""
    values: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for call in calls:
        for outcome, read in OUTCOMES.items():
            y = read(call)
            if y is None:
                continue
            for feature, group_of in FEATURES.items():
                group = group_of(call)
                if group is not None:
                    values[call.model, feature, outcome][group].append(y)
    found = []
    for (model, feature, outcome), groups in sorted(values.items()):
        kept = {name: ys for name, ys in groups.items() if len(ys) >= MIN_GROUP}
        if len(kept) >= 2:  # a relationship compares two groups at least
            found.append(_relationship(model, feature, outcome, kept))
    return found


def _relationship(model: str, feature: str, outcome: str, groups: dict[str, list[float]]) -> Relationship:
    everything = [y for ys in groups.values() for y in ys]
    n, total = len(everything), sum(everything)
    grand = total / n
    between = sum(len(ys) * (_mean(ys) - grand) ** 2 for ys in groups.values())
    spread = sum((y - grand) ** 2 for y in everything)
    shown = []
    for name, ys in sorted(groups.items()):
        rest = [y for other, zs in groups.items() if other != name for y in zs]
        shown.append(Group(name, len(ys), _mean(ys), _cohens_d(ys, rest)))
    return Relationship(model, feature, outcome, n, between / spread if spread > 0 else 0.0, shown)


@dataclass(frozen=True, slots=True)
class ShadowFacts:
    """One answered shadow copy of a call."""

    query_type: str
    model: str
    """The model that served the call."""
    shadow_model: str
    similarity: float


@dataclass(frozen=True, slots=True)
class Alternative:
    """For the calls of one type that `model` served: how `cheaper_model` would do."""

    query_type: str
    model: str
    cheaper_model: str
    basis: str
    """"feedback": the difference of the two models' mean quality on this type (`value`, cheaper minus served);
    "shadow": the mean similarity of the cheaper model's shadowed answers to the served model's (`value`)."""
    calls: int
    """Calls of this type the served model answered."""
    evidence: int
    """Rated calls of both models (feedback), or answered shadow copies (shadow)."""
    value: float
    low: float
    high: float
    cost_ratio: float
    """The cheaper model's cost over the served model's: mean cost per call on this type when both served it, else
    their configured prices."""
    as_well: bool
    cost_usd: float
    """What the served model's calls of this type cost."""


@dataclass(frozen=True, slots=True)
class Cheaper:
    alternatives: list[Alternative]
    share_as_well: float
    """Of the calls with a known type, the share whose type a cheaper model handles as well."""
    saving_usd: float
    """What those calls would have cost less on the cheapest such model."""


def cheaper_models(calls: Sequence[CallFacts], shadows: Iterable[ShadowFacts], prices: dict[str, float]) -> Cheaper:
    """`prices`: per configured model, a price that orders them (input plus output USD per million tokens)."""
    by_type: dict[tuple[str, str], list[CallFacts]] = defaultdict(list)
    for call in calls:
        if call.query_type:
            by_type[call.query_type, call.model].append(call)
    similarities: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for shadow in shadows:
        similarities[shadow.query_type, shadow.model, shadow.shadow_model].append(shadow.similarity)
    found = []
    for (kind, model), served in sorted(by_type.items()):
        for cheaper, price in sorted(prices.items(), key=lambda item: item[1]):
            if price >= prices.get(model, 0.0) or cheaper == model:
                continue
            alternative = _alternative(kind, model, cheaper, served, by_type.get((kind, cheaper), []), similarities)
            if alternative is not None:
                found.append(_priced(alternative, prices))
    typed = sum(len(served) for served in by_type.values())
    best: dict[tuple[str, str], Alternative] = {}
    for alternative in found:
        key = (alternative.query_type, alternative.model)
        if alternative.as_well and (key not in best or alternative.cost_ratio < best[key].cost_ratio):
            best[key] = alternative
    handled = sum(a.calls for a in best.values())
    saving = sum(a.cost_usd * max(0.0, 1.0 - a.cost_ratio) for a in best.values())
    return Cheaper(found, handled / typed if typed else 0.0, saving)


def _alternative(
    kind: str,
    model: str,
    cheaper: str,
    served: list[CallFacts],
    other: list[CallFacts],
    similarities: dict[tuple[str, str, str], list[float]],
) -> Alternative | None:
    rated = [c.quality for c in served if c.quality is not None]
    rated_other = [c.quality for c in other if c.quality is not None]
    cost = sum(c.cost_usd for c in served)
    ratio = _mean([c.cost_usd for c in other]) / _mean([c.cost_usd for c in served]) if other and cost > 0 else math.nan
    if len(rated) >= MIN_GROUP and len(rated_other) >= MIN_GROUP:
        difference = _mean(rated_other) - _mean(rated)
        spread = math.sqrt(_variance(rated_other) / len(rated_other) + _variance(rated) / len(rated))
        low = difference - Z_95 * spread
        evidence = len(rated) + len(rated_other)
        high = difference + Z_95 * spread
        return Alternative(
            kind, model, cheaper, "feedback", len(served), evidence, difference, low, high, ratio, low >= -MARGIN, cost
        )
    copies = similarities.get((kind, model, cheaper), [])
    if len(copies) >= MIN_GROUP:
        mean = _mean(copies)
        spread = math.sqrt(_variance(copies) / len(copies))
        low = mean - Z_95 * spread
        return Alternative(
            kind,
            model,
            cheaper,
            "shadow",
            len(served),
            len(copies),
            mean,
            low,
            mean + Z_95 * spread,
            ratio,
            low >= SIMILAR,
            cost,
        )
    return None


def _priced(alternative: Alternative, prices: dict[str, float]) -> Alternative:
    if not math.isnan(alternative.cost_ratio):
        return alternative
    served_price = prices[alternative.model]
    ratio = prices[alternative.cheaper_model] / served_price if served_price > 0 else 1.0
    return dataclasses.replace(alternative, cost_ratio=ratio)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _variance(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1)


def _cohens_d(group: Sequence[float], rest: Sequence[float]) -> float:
    if len(group) < 2 or len(rest) < 2:
        return 0.0
    pooled = ((len(group) - 1) * _variance(group) + (len(rest) - 1) * _variance(rest)) / (len(group) + len(rest) - 2)
    return (_mean(group) - _mean(rest)) / math.sqrt(pooled) if pooled > 0 else 0.0
