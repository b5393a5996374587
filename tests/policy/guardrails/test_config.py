"""The guardrails and residency schema: the issue's YAML shape, strict validation, team overrides, residency rules."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from gateway.config.guardrails import (
    AnomalyAction,
    ClassificationPolicy,
    GuardrailsConfig,
    InjectionAction,
    PiiAction,
    ResidencyConfig,
    ResidencyRule,
    merge_guardrails,
)
from gateway.records.classification import Classification

ISSUE_YAML = """
guardrails:
  input:
    pii: {default: redact, CREDIT_CARD: block, restore_in_output: true}   # allow | redact | mask | block
    injection: {action: block, threshold: 0.8}                            # off | flag | block
  output:
    pii: {default: redact}
    secrets: redact
teams:
  - name: clinical
    guardrails: {input: {pii: {default: block}}}
    residency: {regions: [eu]}
"""


def _issue() -> tuple[GuardrailsConfig, GuardrailsConfig, ResidencyConfig]:
    raw = yaml.safe_load(ISSUE_YAML)
    team = raw["teams"][0]
    return (
        GuardrailsConfig.model_validate(raw["guardrails"]),
        GuardrailsConfig.model_validate(team["guardrails"]),
        ResidencyConfig.model_validate(team["residency"]),
    )


def test_issue_yaml_loads() -> None:
    config, _, residency = _issue()
    assert config.input.pii.action("CREDIT_CARD") is PiiAction.BLOCK
    assert config.input.pii.action("EMAIL_ADDRESS") is PiiAction.REDACT
    assert config.input.pii.restore_in_output is True
    assert config.input.injection.action is InjectionAction.BLOCK
    assert config.input.injection.threshold == 0.8
    assert config.output.pii_actions()["EMAIL_ADDRESS"] is PiiAction.REDACT
    assert config.output.pii_actions()["SECRET"] is PiiAction.REDACT
    assert residency.regions == frozenset({"eu"})


def test_defaults_are_safe_but_quiet() -> None:
    config = GuardrailsConfig()
    assert config.input.pii.default is PiiAction.REDACT
    assert config.input.injection.action is InjectionAction.FLAG
    assert config.output.pii.default is PiiAction.ALLOW
    assert config.output.secrets is PiiAction.REDACT
    assert config.anomaly.action is AnomalyAction.FLAG


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"input": {"pii": {"default": "shred"}}}, "default"),
        ({"input": {"pii": {"CREDIT_CRAD": "block"}}}, "CREDIT_CRAD"),
        ({"input": {"injection": {"action": "block", "threshold": 1.5}}}, "threshold"),
        ({"input": {"injection": {"action": "warn"}}}, "action"),
        ({"input": {"content": {"blocked_patterns": ["(unclosed"]}}}, "does not compile"),
        ({"input": {"content": {"topics": {"blocked": {"medical": []}}}}}, "at least one keyword"),
        ({"input": {"content": {"max_input_tokens": 0}}}, "max_input_tokens"),
        ({"output": {"confidential": {"strings": [""]}}}, "must not be empty"),
        ({"output": {"secrets": "hide"}}, "secrets"),
        ({"classification": {"kinds": {"PASSPORT": "restricted"}}}, "unknown entity type"),
        ({"classification": {"baseline": "secret"}}, "unknown data classification"),
        ({"anomaly": {"action": "ban"}}, "action"),
        ({"inputs": {}}, "inputs"),
    ],
)
def test_invalid_blocks_name_the_field(raw: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        GuardrailsConfig.model_validate(raw)


def test_team_overrides_only_the_keys_it_sets() -> None:
    default, team, _ = _issue()
    merged = merge_guardrails(default, team)
    assert merged.input.pii.default is PiiAction.BLOCK
    # Everything the team did not set comes from the default, explicit per-type entries included.
    assert merged.input.pii.CREDIT_CARD is PiiAction.BLOCK
    assert merged.input.pii.restore_in_output is True
    assert merged.input.injection == default.input.injection
    assert merged.output == default.output
    # The default itself is unchanged.
    assert default.input.pii.default is PiiAction.REDACT


def test_merge_from_a_raw_mapping_and_lists_replace_whole() -> None:
    default = GuardrailsConfig.model_validate(
        {"input": {"content": {"blocked_keywords": ["alpha", "beta"], "max_input_tokens": 100}}}
    )
    merged = merge_guardrails(default, {"input": {"content": {"blocked_keywords": ["gamma"]}}})
    assert merged.input.content.blocked_keywords == ["gamma"]
    assert merged.input.content.max_input_tokens == 100


def test_merge_replaces_dicts_of_rules_whole() -> None:
    default = GuardrailsConfig.model_validate(
        {
            "input": {"content": {"topics": {"allowed": {"billing": ["invoice"]}, "blocked": {"medical": ["dose"]}}}},
            "classification": {"kinds": {"IP_ADDRESS": "public", "EMAIL_ADDRESS": "internal"}},
        }
    )
    team = GuardrailsConfig.model_validate(
        {
            "input": {"content": {"topics": {"allowed": {"shipping": ["parcel"]}}}},
            "classification": {"kinds": {"EMAIL_ADDRESS": "restricted"}},
        }
    )
    merged = merge_guardrails(default, team)
    assert merged.input.content.topics.allowed == {"shipping": ["parcel"]}
    assert merged.input.content.topics.blocked == {"medical": ["dose"]}
    assert merged.classification.kinds == {"EMAIL_ADDRESS": Classification.RESTRICTED}


def test_merge_validates_the_team_block() -> None:
    with pytest.raises(ValidationError):
        merge_guardrails(GuardrailsConfig(), {"input": {"pii": {"default": "nope"}}})


def test_classification_levels_default_and_override() -> None:
    policy = ClassificationPolicy.model_validate({"baseline": "internal", "kinds": {"EMAIL_ADDRESS": "restricted"}})
    assert policy.baseline is Classification.INTERNAL
    assert policy.level("EMAIL_ADDRESS") is Classification.RESTRICTED
    assert policy.level("CREDIT_CARD") is Classification.RESTRICTED
    assert policy.level("PHONE_NUMBER") is Classification.CONFIDENTIAL
    assert policy.level("IP_ADDRESS") is Classification.INTERNAL


def test_residency_rule_per_classification() -> None:
    residency = ResidencyConfig.model_validate(
        {
            "regions": ["eu", "us"],
            "classifications": {
                "confidential": {"compliance": ["gdpr"]},
                "restricted": {"regions": ["eu"], "compliance": ["hipaa"]},
            },
        }
    )
    public = residency.rule_for(Classification.PUBLIC)
    assert public.allows("us")
    assert public.allows("eu")
    assert not public.allows("ap")
    assert not public.allows(None)
    confidential = residency.rule_for(Classification.CONFIDENTIAL)
    assert confidential.allows("us", {"gdpr"})
    assert not confidential.allows("us")
    restricted = residency.rule_for(Classification.RESTRICTED)
    # A restricted request obeys the confidential rule too.
    assert restricted.compliance == frozenset({"gdpr", "hipaa"})
    assert restricted.allows("eu", {"gdpr", "hipaa", "iso27001"})
    assert not restricted.allows("us", {"gdpr", "hipaa"})
    assert not restricted.allows("eu", {"hipaa"})


def test_unrestricted_residency_allows_anything() -> None:
    rule = ResidencyConfig().rule_for(Classification.RESTRICTED)
    assert rule.allows(None)
    assert rule.allows("anywhere")


def test_team_residency_narrows_never_widens() -> None:
    gateway = ResidencyConfig.model_validate({"regions": ["eu", "us"]})
    team = ResidencyConfig.model_validate({"regions": ["eu", "ap"], "compliance": ["gdpr"]})
    combined = gateway.combined(team)
    assert combined.regions == frozenset({"eu"})
    assert combined.compliance == frozenset({"gdpr"})
    disjoint = ResidencyConfig.model_validate({"regions": ["us"]}).combined(
        ResidencyConfig.model_validate({"regions": ["eu"]})
    )
    assert not disjoint.rule_for(Classification.PUBLIC).allows("us")
    assert not disjoint.rule_for(Classification.PUBLIC).allows("eu")


def test_residency_rejects_an_empty_region_list() -> None:
    with pytest.raises(ValidationError, match="at least one region"):
        ResidencyRule.model_validate({"regions": []})
    with pytest.raises(ValidationError, match="unknown data classification"):
        ResidencyConfig.model_validate({"classifications": {"top-secret": {"regions": ["eu"]}}})
