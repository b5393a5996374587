"""A rating checked against its metric's declaration, and scaled to a quality in [0, 1] (1 the best)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.config.learning import Direction, FeedbackConfig, FeedbackMetricConfig, MetricType
from gateway.errors import InvalidRequest


class Source(StrEnum):
    END_USER = "end_user"
    CALLING_SERVICE = "calling_service"
    EVALUATOR = "evaluator"


@dataclass(frozen=True, slots=True)
class Given:
    """A rating as the caller gave it: exactly one of the three set."""

    metric: str
    boolean: bool | None = None
    score: float | None = None
    label: str | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    metric: FeedbackMetricConfig
    value: float
    """0 or 1, the score, or the label's value."""
    label: str


def check(given: Given, metrics: FeedbackConfig) -> Checked:
    """INVALID_ARGUMENT for an undeclared metric, a value of another type, or a score out of range."""
    metric = metrics.metric(given.metric)
    if metric is None:
        declared = ", ".join(m.name for m in metrics.metrics) or "none (feedback.metrics is empty)"
        raise InvalidRequest(
            f"metric {given.metric!r} is not declared; declared metrics: {declared}",
            reason="UNKNOWN_METRIC",
            metadata={"metric": given.metric},
        )
    if metric.type is MetricType.BOOLEAN:
        if given.boolean is None:
            raise _wrong_type(metric, given)
        return Checked(metric, float(given.boolean), "")
    if metric.type is MetricType.FLOAT:
        if given.score is None:
            raise _wrong_type(metric, given)
        assert metric.min is not None
        assert metric.max is not None
        if not metric.min <= given.score <= metric.max:
            raise InvalidRequest(
                f"metric {metric.name!r}: score {given.score} is outside its range [{metric.min}, {metric.max}]",
                reason="RATING_OUT_OF_RANGE",
                metadata={"metric": metric.name},
            )
        return Checked(metric, given.score, "")
    if given.label is None:
        raise _wrong_type(metric, given)
    value = metric.labels.get(given.label)
    if value is None:
        raise InvalidRequest(
            f"metric {metric.name!r}: label {given.label!r} is not one of {', '.join(sorted(metric.labels))}",
            reason="UNKNOWN_LABEL",
            metadata={"metric": metric.name},
        )
    return Checked(metric, value, given.label)


def quality(metric: FeedbackMetricConfig, value: float) -> float:
    """The value in [0, 1], 1 the best: a float scaled by its range, then turned round if lower is better."""
    if metric.type is MetricType.FLOAT:
        assert metric.min is not None
        assert metric.max is not None
        value = (value - metric.min) / (metric.max - metric.min)
    return 1.0 - value if metric.direction is Direction.LOWER_IS_BETTER else value


def _wrong_type(metric: FeedbackMetricConfig, given: Given) -> InvalidRequest:
    wanted = {MetricType.BOOLEAN: "boolean", MetricType.FLOAT: "score", MetricType.LABEL: "label"}[metric.type]
    found = next((name for name in ("boolean", "score", "label") if getattr(given, name) is not None), None)
    return InvalidRequest(
        f"metric {metric.name!r} is a {metric.type.value} metric: give its rating as `{wanted}`, not `{found}`"
        if found is not None
        else f"metric {metric.name!r}: no value given; set `{wanted}`",
        reason="RATING_TYPE_MISMATCH",
        metadata={"metric": metric.name},
    )
