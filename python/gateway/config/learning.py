"""The schema of `feedback:` (the metrics callers may rate calls on) and of a route's `learned:` block (how the
`learned` strategy weighs quality, cost and latency, explores and forgets)."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from gateway.config.base import Name, Strict


class MetricType(StrEnum):
    BOOLEAN = "boolean"
    """A thumbs up (true) or down (false)."""
    FLOAT = "float"
    """A score within the metric's declared [min, max]."""
    LABEL = "label"
    """One of the metric's declared labels, each mapped to a value in [0, 1]."""


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


class FeedbackMetricConfig(Strict):
    name: Name
    type: MetricType
    direction: Direction = Direction.HIGHER_IS_BETTER
    min: float | None = Field(default=None, description="float: the lowest score a caller may give.")
    max: float | None = Field(default=None, description="float: the highest score.")
    labels: dict[str, float] = Field(
        default_factory=dict, description="label: each label a caller may give, with its value between 0 and 1."
    )

    @model_validator(mode="after")
    def _check_type_fields(self) -> Self:
        if self.type is MetricType.FLOAT and (self.min is None or self.max is None or self.min >= self.max):
            raise ValueError(f"metric {self.name!r}: a float metric needs min < max")
        if self.type is not MetricType.FLOAT and (self.min is not None or self.max is not None):
            raise ValueError(f"metric {self.name!r}: min and max are for float metrics")
        if self.type is MetricType.LABEL:
            if not self.labels:
                raise ValueError(f"metric {self.name!r}: a label metric needs labels")
            if any(not 0 <= value <= 1 for value in self.labels.values()):
                raise ValueError(f"metric {self.name!r}: label values must lie between 0 and 1")
        elif self.labels:
            raise ValueError(f"metric {self.name!r}: labels are for label metrics")
        return self


class FeedbackConfig(Strict):
    metrics: list[FeedbackMetricConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_unique(self) -> Self:
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("feedback.metrics: each metric name once")
        return self

    def metric(self, name: str) -> FeedbackMetricConfig | None:
        return next((m for m in self.metrics if m.name == name), None)


class QueryFeature(StrEnum):
    """What a query type is made of; each is cheap to read off a request."""

    TOKENS = "tokens"
    """The prompt's length, in buckets of powers of four (under 64, 256, 1,024, 4,096 tokens, or more)."""
    LANGUAGE = "language"
    """The prompt's main language, by its script and its most common words."""
    CODE = "code"
    """Whether the prompt holds source code."""
    TOOLS = "tools"
    IMAGES = "images"
    RULE = "rule"
    """The rule of a rules route that sent the call here."""
    TEAM = "team"
    CLUSTER = "cluster"
    """The cluster of the prompt's embedding (the semantic cache's), learned online: see `clusters`."""


class ClusterConfig(Strict):
    """The `cluster` feature: query types by the meaning of the prompt, from its embedding by the semantic cache's
    model, clustered online by mini-batch k-means (learning/clusters.py)."""

    k: int = Field(default=16, ge=2, le=64, description="How many clusters: each multiplies the query types.")
    seed: int = Field(default=0, description="Seeds the choice of the first centers, so a fresh start repeats.")
    embed_always: bool = Field(
        default=False,
        description="Embed every call's prompt for its cluster, also where the semantic cache would not (it is off "
        "for the call, or the prompt is not plain user text): one embedding per call, a few ms of CPU. Off: only calls "
        "the semantic cache embeds anyway get a cluster; the others are typed by the cheap features alone.",
    )


class LearnedConfig(Strict):
    """`strategy: learned`: per query type, the target with the best objective, learned from feedback:
    quality - cost_weight * cost_usd - latency_weight * seconds."""

    quality: Name = Field(description="The feedback metric that measures an answer's quality (feedback.metrics).")
    cost_weight: float = Field(default=0.0, ge=0, description="Quality points one USD of a call's cost is worth.")
    latency_weight: float = Field(default=0.0, ge=0, description="Quality points one second of latency is worth.")
    exploration: float = Field(
        default=0.1, ge=0, le=1, description="The largest share of calls sent to a target other than the best known."
    )
    min_feedback: int = Field(
        default=20, ge=0, description="Cold start: feedback a query type needs before its estimates steer routing."
    )
    half_life_s: float = Field(
        default=86_400.0,
        gt=0,
        description="The recent memory: evidence this old counts half in it. An arm whose recent quality differs from "
        "its long memory's is estimated from this memory alone, so a model that got worse loses traffic.",
    )
    memory_half_life_s: float = Field(
        default=30 * 86_400.0,
        gt=0,
        description="The long memory, which estimates arms while their recent quality agrees with it: the longer, "
        "the less the strategy re-checks arms it knows. At least half_life_s.",
    )
    features: list[QueryFeature] = Field(
        default_factory=lambda: [
            QueryFeature.TOKENS,
            QueryFeature.LANGUAGE,
            QueryFeature.CODE,
            QueryFeature.TOOLS,
            QueryFeature.IMAGES,
            QueryFeature.RULE,
        ],
        description="What tells query types apart.",
    )
    clusters: ClusterConfig = Field(default_factory=ClusterConfig, description="For the cluster feature.")

    @model_validator(mode="after")
    def _check_memory(self) -> Self:
        if self.memory_half_life_s < self.half_life_s:
            raise ValueError("learned: memory_half_life_s must be at least half_life_s")
        return self
