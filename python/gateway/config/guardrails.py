"""The schema of `guardrails:` (PII in and out, secrets, prompt injection, content rules, classification, usage
anomalies) and of `residency:`, plus how a team's partial block overrides the global default.

```yaml
guardrails:
  input:
    pii: {default: redact, CREDIT_CARD: block, restore_in_output: true}   # allow | redact | mask | block
    injection: {action: block, threshold: 0.8, model: linear}             # off | flag | block; linear | combined
    content: {blocked_keywords: [...], blocked_patterns: [...], max_input_tokens: 8000,
              topics: {allowed: {billing: [invoice, refund]}, blocked: {medical: [diagnosis]}}}
  output:
    pii: {default: redact}
    secrets: redact                                                       # allow | redact | mask | block
    confidential: {strings: [PROJECT-ZEUS], patterns: ['ACME-\\d{4}'], action: redact}
  classification: {baseline: public, kinds: {CREDIT_CARD: restricted}}
  anomaly: {action: flag, z_threshold: 4.0}                               # off | flag | throttle | block
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from gateway import _core
from gateway.config.base import Strict
from gateway.records.classification import Classification

# Read from the core itself rather than from policy.guardrails.pii (which imports this module): the names cannot
# drift from what the scanner reports.
PII_KINDS: tuple[str, ...] = _core.PII_KINDS
"""The entity types the Rust core's scanner reports (Presidio's names, plus SECRET for keys and tokens)."""


class PiiAction(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    """Typed, numbered placeholders (<EMAIL_1>), restorable in the answer."""
    MASK = "mask"
    """One * per character (cards keep their last four digits); not restorable."""
    BLOCK = "block"


class InjectionAction(StrEnum):
    OFF = "off"
    FLAG = "flag"
    BLOCK = "block"


class MarkerAction(StrEnum):
    REDACT = "redact"
    BLOCK = "block"


class AnomalyAction(StrEnum):
    OFF = "off"
    FLAG = "flag"
    THROTTLE = "throttle"
    BLOCK = "block"


class PiiPolicy(Strict):
    """An action per entity type; types not named take `default`."""

    default: PiiAction = PiiAction.REDACT
    EMAIL_ADDRESS: PiiAction | None = None
    PHONE_NUMBER: PiiAction | None = None
    CREDIT_CARD: PiiAction | None = None
    US_SSN: PiiAction | None = None
    IBAN_CODE: PiiAction | None = None
    IP_ADDRESS: PiiAction | None = None
    DATE_OF_BIRTH: PiiAction | None = None
    SECRET: PiiAction | None = None

    def action(self, kind: str) -> PiiAction:
        explicit: PiiAction | None = getattr(self, kind, None)
        return explicit if explicit is not None else self.default

    def actions(self) -> dict[str, PiiAction]:
        """Entity type -> action, for every type the scanner knows."""
        return {kind: self.action(kind) for kind in PII_KINDS}


class InputPiiPolicy(PiiPolicy):
    restore_in_output: bool = Field(
        default=True, description="Put the originals of redacted placeholders back in the answer the caller sees."
    )


class InjectionModel(StrEnum):
    LINEAR = "linear"
    """injection-linear-5 (hashed n-grams in the Rust core, ~0.6 ms a 2,000-token prompt)."""
    COMBINED = "combined"
    """The linear model stacked with a head over MiniLM embeddings: more attacks caught on the public test splits, more
    false alarms on non-English look-alikes, ~500x the cost (docs/guardrails.md, "Candidate (b) measured")."""


class InjectionPolicy(Strict):
    action: InjectionAction = InjectionAction.FLAG
    threshold: float = Field(default=0.8, gt=0, le=1, description="Score in [0, 1] from which to flag or block.")
    model: InjectionModel = Field(
        default=InjectionModel.LINEAR, description="The learned model beside the phrasings: linear or combined."
    )


def _compiles(patterns: list[str]) -> list[str]:
    for i, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"pattern #{i} does not compile: {err}") from None
    return patterns


class TopicRules(Strict):
    """Topics by keyword lists (case-insensitive whole words). With `allowed` set, a request must touch one of them."""

    allowed: dict[str, list[str]] = Field(default_factory=dict)
    blocked: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("allowed", "blocked")
    @classmethod
    def _non_empty(cls, topics: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, words in topics.items():
            if not [w for w in words if w.strip()]:
                raise ValueError(f"topic {name!r} needs at least one keyword")
        return topics


class ContentRules(Strict):
    blocked_keywords: list[str] = Field(default_factory=list, description="Case-insensitive whole words or phrases.")
    blocked_patterns: list[str] = Field(default_factory=list, description="Python regexes, searched as written.")
    max_input_tokens: int | None = Field(default=None, ge=1, description="Prompt tokens a request may carry.")
    topics: TopicRules = Field(default_factory=TopicRules)

    _check_patterns = field_validator("blocked_patterns")(_compiles)


class InputPolicy(Strict):
    pii: InputPiiPolicy = Field(default_factory=InputPiiPolicy)
    injection: InjectionPolicy = Field(default_factory=InjectionPolicy)
    content: ContentRules = Field(default_factory=ContentRules)


class ConfidentialMarkers(Strict):
    """Strings (case-insensitive) and regexes that must never leave in an answer."""

    strings: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    action: MarkerAction = MarkerAction.REDACT
    replacement: str = "[CONFIDENTIAL]"
    window: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="Characters a stream holds back for a pattern still arriving (strings need only their length).",
    )

    _check_patterns = field_validator("patterns")(_compiles)

    @field_validator("strings")
    @classmethod
    def _no_empty_strings(cls, strings: list[str]) -> list[str]:
        if any(not s for s in strings):
            raise ValueError("confidential marker strings must not be empty")
        return strings


class OutputPolicy(Strict):
    pii: PiiPolicy = Field(default_factory=lambda: PiiPolicy(default=PiiAction.ALLOW))
    secrets: PiiAction = PiiAction.REDACT
    """The action for the SECRET kind (keys, tokens, private keys); it overrides `pii`'s SECRET entry."""
    confidential: ConfidentialMarkers = Field(default_factory=ConfidentialMarkers)

    def pii_actions(self) -> dict[str, PiiAction]:
        actions = self.pii.actions()
        actions["SECRET"] = self.secrets
        return actions


DEFAULT_KIND_LEVELS: Mapping[str, Classification] = {
    "EMAIL_ADDRESS": Classification.CONFIDENTIAL,
    "PHONE_NUMBER": Classification.CONFIDENTIAL,
    "CREDIT_CARD": Classification.RESTRICTED,
    "US_SSN": Classification.RESTRICTED,
    "IBAN_CODE": Classification.RESTRICTED,
    "IP_ADDRESS": Classification.INTERNAL,
    "DATE_OF_BIRTH": Classification.CONFIDENTIAL,
    "SECRET": Classification.RESTRICTED,
}
"""Payment and national identifiers and credentials are restricted; other personal data is confidential; an IP
address alone is internal (it names machines more often than people)."""


class ClassificationPolicy(Strict):
    """How findings raise a request's classification: each entity type found lifts it to at least its level.
    `kinds` overrides DEFAULT_KIND_LEVELS for the types it names."""

    baseline: Classification = Classification.PUBLIC
    kinds: dict[str, Classification] = Field(default_factory=dict)

    def level(self, kind: str) -> Classification:
        return self.kinds.get(kind, DEFAULT_KIND_LEVELS.get(kind, Classification.CONFIDENTIAL))

    @field_validator("baseline", mode="before")
    @classmethod
    def _parse_baseline(cls, value: object) -> object:
        return Classification.parse(value) if isinstance(value, str) else value

    @field_validator("kinds", mode="before")
    @classmethod
    def _parse_kinds(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        parsed: dict[str, object] = {}
        for kind, level in value.items():
            if kind not in PII_KINDS:
                raise ValueError(f"unknown entity type {kind!r}; valid: {', '.join(PII_KINDS)}")
            parsed[kind] = Classification.parse(level) if isinstance(level, str) else level
        return parsed


class AnomalyPolicy(Strict):
    """Per-key baselines (EWMA mean and variance) of request rate, prompt and answer length, and error rate."""

    action: AnomalyAction = AnomalyAction.FLAG
    z_threshold: float = Field(default=4.0, gt=0, description="Standard deviations above the baseline that count.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="EWMA weight of each new observation.")
    window_s: float = Field(default=10.0, gt=0, description="Request-rate bucket: requests are counted per window.")
    warmup: int = Field(default=20, ge=1, description="Observations (windows, for the rate) before a key is judged.")
    min_burst: int = Field(default=10, ge=1, description="Requests in one window below which no burst is flagged.")
    long_answer_z: float = Field(default=2.0, gt=0, description="z of an answer length that counts as unusually long.")
    long_answer_run: int = Field(default=4, ge=2, description="Consecutive unusually long answers that are flagged.")
    cooldown_s: float = Field(default=60.0, ge=0, description="How long throttle or block lasts after a flag.")
    max_keys: int = Field(default=100_000, ge=1, description="Keys tracked; the least recently seen is dropped.")


class GuardrailsConfig(Strict):
    input: InputPolicy = Field(default_factory=InputPolicy)
    output: OutputPolicy = Field(default_factory=OutputPolicy)
    classification: ClassificationPolicy = Field(default_factory=ClassificationPolicy)
    anomaly: AnomalyPolicy = Field(default_factory=AnomalyPolicy)


def _merged(base: BaseModel, override: Mapping[str, Any]) -> dict[str, Any]:
    """`base` as a dict with `override`'s keys replacing its own; nested sections (models) merge key by key, values
    that are lists or dicts (keywords, topics, kind levels) are replaced whole."""
    merged = base.model_dump()
    for key, value in override.items():
        current = getattr(base, key, None)
        merged[key] = (
            _merged(current, value) if isinstance(current, BaseModel) and isinstance(value, Mapping) else value
        )
    return merged


def merge_guardrails(default: GuardrailsConfig, team: GuardrailsConfig | Mapping[str, Any]) -> GuardrailsConfig:
    """The team's guardrails: `default` with only the keys the team's block sets replaced (recursively).

    A team block `{input: {pii: {default: block}}}` changes the input PII default and keeps every other key, including
    the default's explicit per-type entries (`CREDIT_CARD: block` stays). Lists and dicts of rules (keywords, topics,
    markers) are replaced whole, not appended to. A parsed team block counts the keys it was given, not defaults.
    """
    override = team.model_dump(exclude_unset=True) if isinstance(team, GuardrailsConfig) else dict(team)
    # Enum members dump as themselves and validate back unchanged; labels in a raw mapping are parsed as in YAML.
    return GuardrailsConfig.model_validate(_merged(default, override))


class ResidencyRule(Strict):
    """Where a request may go: a target qualifies when its region is listed (or no list is set) and it carries every
    required compliance label."""

    regions: frozenset[str] | None = Field(default=None, description="Allowed provider regions; unset: any region.")
    compliance: frozenset[str] = Field(default_factory=frozenset, description="Labels a target must all carry.")

    @field_validator("regions")
    @classmethod
    def _non_empty(cls, regions: frozenset[str] | None) -> frozenset[str] | None:
        if regions is not None and not regions:
            raise ValueError("regions: list at least one region, or leave it out to allow any")
        return regions

    def allows(self, region: str | None, compliance: frozenset[str] | set[str] | tuple[str, ...] = ()) -> bool:
        if self.regions is not None and (region is None or region not in self.regions):
            return False
        return self.compliance <= frozenset(compliance)

    def narrowed(self, other: ResidencyRule) -> ResidencyRule:
        """Both rules at once: regions in both lists, labels of either."""
        if self.regions is None:
            regions = other.regions
        elif other.regions is None:
            regions = self.regions
        else:
            regions = self.regions & other.regions
        if regions is not None and not regions:
            # No region satisfies both; a rule with an empty list would fail validation, so say it directly.
            return ResidencyRule.model_construct(regions=frozenset(), compliance=self.compliance | other.compliance)
        return ResidencyRule(regions=regions, compliance=self.compliance | other.compliance)


class ResidencyConfig(ResidencyRule):
    """`residency:` of the gateway or of a team: a rule for all traffic, and stricter rules per classification.

    ```yaml
    residency:
      regions: [eu, us]
      classifications:
        restricted: {regions: [eu], compliance: [hipaa]}
    ```
    """

    classifications: dict[Classification, ResidencyRule] = Field(default_factory=dict)

    @field_validator("classifications", mode="before")
    @classmethod
    def _parse_levels(cls, value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        return {Classification.parse(k) if isinstance(k, str) else k: v for k, v in value.items()}

    def rule_for(self, classification: Classification) -> ResidencyRule:
        """The rule a request of this classification obeys: the general rule narrowed by the rule of its level and
        of every lower level that has one (a restricted request obeys the confidential rule too)."""
        # model_construct: a combined config may hold an empty region list (no region satisfies both of its rules).
        rule = ResidencyRule.model_construct(regions=self.regions, compliance=self.compliance)
        for level, level_rule in sorted(self.classifications.items()):
            if level <= classification:
                rule = rule.narrowed(level_rule)
        return rule

    def combined(self, other: ResidencyConfig) -> ResidencyConfig:
        """Gateway and team residency together: every rule of both applies (a team can narrow, never widen)."""
        general = ResidencyRule.model_construct(regions=self.regions, compliance=self.compliance).narrowed(
            ResidencyRule.model_construct(regions=other.regions, compliance=other.compliance)
        )
        levels: dict[Classification, ResidencyRule] = dict(self.classifications)
        for level, rule in other.classifications.items():
            levels[level] = levels[level].narrowed(rule) if level in levels else rule
        return ResidencyConfig.model_construct(
            regions=general.regions, compliance=general.compliance, classifications=levels
        )
