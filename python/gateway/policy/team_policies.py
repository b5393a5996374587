"""Each team's guardrails and residency: the gateway's defaults with the team's overrides, built once at start."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config.guardrails import GuardrailsConfig, ResidencyConfig, ResidencyRule, merge_guardrails
from gateway.config.schema import GatewayConfig
from gateway.errors import FailedPrecondition
from gateway.policy.guardrails import AnomalyDetector, GuardrailAction, InputGuard, OutputGuard
from gateway.policy.guardrails.input import TokenCounting
from gateway.records.classification import Classification
from gateway.routing.catalog import Target


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    input: InputGuard | None = None
    output: OutputGuard | None = None
    residency: ResidencyConfig | None = None

    def residency_rule(self, classification: Classification) -> ResidencyRule | None:
        return self.residency.rule_for(classification) if self.residency is not None else None


class TeamPolicies:
    def __init__(self, config: GatewayConfig, count_tokens: TokenCounting) -> None:
        default = config.guardrails
        self._default = _policy(default, config.residency, count_tokens)
        self._teams: dict[str, TeamPolicy] = {}
        for team in config.teams:
            guardrails = default
            if team.guardrails is not None:
                guardrails = merge_guardrails(default or GuardrailsConfig(), team.guardrails)
            residency = config.residency
            if team.residency is not None:
                residency = residency.combined(team.residency) if residency is not None else team.residency
            self._teams[team.name] = _policy(guardrails, residency, count_tokens)
        self.anomalies = AnomalyDetector.from_config(default) if default is not None else None
        """Usage baselines per key under the gateway's anomaly policy (one detector: baselines are per key)."""

    @property
    def has_input(self) -> bool:
        """Whether any team has input guardrails (else the pipeline leaves their stage out)."""
        return any(p.input is not None for p in (self._default, *self._teams.values()))

    @property
    def has_output(self) -> bool:
        return any(p.output is not None for p in (self._default, *self._teams.values()))

    def for_team(self, team: str) -> TeamPolicy:
        return self._teams.get(team, self._default)


def _policy(
    guardrails: GuardrailsConfig | None, residency: ResidencyConfig | None, count_tokens: TokenCounting
) -> TeamPolicy:
    if guardrails is None:
        return TeamPolicy(residency=residency)
    return TeamPolicy(
        InputGuard.from_config(guardrails, count_tokens=count_tokens), OutputGuard.from_config(guardrails), residency
    )


def allowed_targets(
    candidates: list[Target], rule: ResidencyRule, *, requested: str, team: str, classification: Classification
) -> list[Target]:
    """The candidates the residency rule allows; FAILED_PRECONDITION naming the rule when none is left."""
    allowed = [t for t in candidates if rule.allows(t.provider.config.region, t.provider.config.compliance)]
    if not allowed:
        regions = ", ".join(sorted(rule.regions)) if rule.regions is not None else "any"
        labels = ", ".join(sorted(rule.compliance)) or "none"
        raise FailedPrecondition(
            f"no target of {requested!r} may take {classification.label} data of team {team or '(none)'}: the "
            f"residency policy allows regions {regions} with compliance labels {labels}",
            reason="RESIDENCY_NO_TARGET",
            metadata={"classification": classification.label, "regions": regions, "compliance": labels},
        )
    return allowed


def action_records(actions: tuple[GuardrailAction, ...]) -> list[dict[str, object]]:
    """Actions as audit-record entries: type, kind, action, count, and the score of a scoring check with the model
    that gave it; never a value."""
    records: list[dict[str, object]] = []
    for a in actions:
        record: dict[str, object] = {"type": a.check, "kind": a.entity, "action": a.action, "count": a.count}
        if a.score is not None:
            record["score"] = round(a.score, 4)
            record["model"] = a.model
        records.append(record)
    return records
