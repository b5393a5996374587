"""The compliance report of one team over one period: what data classifications it sent, what the guardrails
redacted and blocked, prompt-injection verdicts, where its data went against the residency rules, what was refused
and by which rule, its keys' lifecycle, and the audit log's extent and retention. Read through AdminOperations, so a
team admin gets only their own team's; `build` is pure, for tests and for the CLI's renderers."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.config.guardrails import ResidencyConfig
from gateway.config.schema import GatewayConfig
from gateway.errors import NotFound
from gateway.policy.access import check_manages
from gateway.records.audit import AuditFilter, AuditRecord
from gateway.records.classification import Classification
from gateway.records.governance import KeyRecord

if TYPE_CHECKING:
    # The CLI renders reports with this module's types; the server's operations (and prometheus_client with them,
    # which a --workers supervisor must import only after setting its multiprocess folder) stay out of its imports.
    from gateway.admin.operations import AdminOperations
    from gateway.store.ledger import LedgerStore

_REDACTING = frozenset({"redact", "mask"})


@dataclass(frozen=True, slots=True)
class Destination:
    provider: str
    region: str
    classification: str
    calls: int
    allowed: bool
    """Whether the residency rule for that classification allows the provider's region and labels."""


@dataclass(frozen=True, slots=True)
class KeyEvent:
    at: float
    key_id: str
    name: str
    event: str
    """created, rotated (the last rotation: a key keeps only that) or revoked."""


@dataclass(frozen=True, slots=True)
class Provider:
    region: str | None
    compliance: frozenset[str]


@dataclass(slots=True)
class ComplianceReport:
    team: str
    since: float
    until: float
    generated_at: float
    calls: int = 0
    classifications: dict[str, int] = field(default_factory=dict)
    redactions: dict[str, int] = field(default_factory=dict)
    """Entity type -> values redacted or masked."""
    blocks: dict[str, int] = field(default_factory=dict)
    """Entity type or rule -> requests or answers blocked for it."""
    injection: dict[str, int] = field(default_factory=dict)
    """Verdict (flag, block) -> calls."""
    destinations: list[Destination] = field(default_factory=list)
    residency_violations: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    """Rule (the refusal's reason, else its status) -> calls refused."""
    key_events: list[KeyEvent] = field(default_factory=list)
    audit_records: int = 0
    first_record_at: float | None = None
    last_record_at: float | None = None
    audit_writers: int = 0
    """Processes that wrote audit records in the period (any team's)."""
    audit_gaps: int = 0
    """Records missing from the gateway's whole log in the period: numbers absent between a writer's first and last
    record there. A loss before a writer's first or after its last record in the period is not seen; a team purged
    sooner by a shorter retention shows as gaps."""
    retention_days: int = 0
    last_purge_at: float | None = None
    """When the gateway last purged past retention (the latest purge of any running process); None before any."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComplianceReport:
        fields = dict(data)
        fields["destinations"] = [Destination(**d) for d in data.get("destinations", [])]
        fields["key_events"] = [KeyEvent(**e) for e in data.get("key_events", [])]
        return cls(**fields)


def build(
    team: str,
    since: float,
    until: float,
    records: Iterable[AuditRecord],
    keys: Iterable[KeyRecord],
    providers: dict[str, Provider],
    residency: ResidencyConfig,
    retention_days: int,
    last_purge_at: float | None,
    sequences: dict[str, tuple[int, int, int]],
    now: float,
) -> ComplianceReport:
    """`sequences`: per writer, over every team's records of the period, (lowest seq, highest seq, records)."""
    report = ComplianceReport(team, since, until, now, retention_days=retention_days, last_purge_at=last_purge_at)
    report.audit_writers = len(sequences)
    report.audit_gaps = sum(high - low + 1 - count for low, high, count in sequences.values())
    classes: Counter[str] = Counter()
    redactions: Counter[str] = Counter()
    blocks: Counter[str] = Counter()
    injection: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    destinations: Counter[tuple[str, str]] = Counter()
    for record in records:
        report.calls += 1
        if report.first_record_at is None:
            report.first_record_at = record.at
        report.last_record_at = record.at
        classes[record.classification or "unclassified"] += 1
        for action in record.guardrails:
            kind, verb, count = str(action.get("kind")), str(action.get("action")), int(action.get("count") or 1)
            if action.get("type") == "injection":
                injection[verb] += 1
            if verb in _REDACTING:
                redactions[kind] += count
            elif verb == "block":
                blocks[kind] += 1
        if record.status != "OK":
            refusals[record.reason or record.status] += 1
        if record.provider and record.provider in providers:
            destinations[(record.provider, record.classification or "public")] += 1
    report.audit_records = report.calls
    report.classifications = dict(classes.most_common())
    report.redactions = dict(redactions.most_common())
    report.blocks = dict(blocks.most_common())
    report.injection = dict(injection.most_common())
    report.refusals = dict(refusals.most_common())
    for (name, level), calls in sorted(destinations.items()):
        provider = providers[name]
        rule = residency.rule_for(_level(level))
        allowed = rule.allows(provider.region, provider.compliance)
        report.destinations.append(Destination(name, provider.region or "unset", level, calls, allowed))
        report.residency_violations += 0 if allowed else calls
    report.key_events = sorted(_key_events(keys, since, until), key=lambda e: e.at)
    return report


def _level(label: str) -> Classification:
    try:
        return Classification.parse(label)
    except ValueError:
        return Classification.PUBLIC


def _key_events(keys: Iterable[KeyRecord], since: float, until: float) -> Iterable[KeyEvent]:
    for key in keys:
        events = [(key.created_at, "created"), (key.revoked_at, "revoked")]
        if key.previous_valid_until is not None:
            events.append((key.updated_at, "rotated"))
        for at, event in events:
            if at is not None and since <= at < until:
                yield KeyEvent(at, key.id, key.name, event)


class ComplianceOperations:
    def __init__(
        self,
        admin: AdminOperations,
        ledger: LedgerStore,
        config: GatewayConfig,
        last_purge_at: Callable[[], Awaitable[float | None]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._admin = admin
        self._ledger = ledger
        self._providers = {p.name: Provider(p.region, p.compliance) for p in config.providers}
        self._residency = config.residency or ResidencyConfig()
        self._team_residency = {t.name: t.residency for t in config.teams if t.residency is not None}
        self._last_purge_at = last_purge_at
        """The latest purge of any process: one process of a machine runs them (server/supervisor.py)."""
        self._clock = clock

    async def report(self, caller: KeyRecord, team: str, since: float, until: float) -> ComplianceReport:
        check_manages(caller, team)
        teams = {t.name: t for t in self._admin.list_teams(caller)}
        if team not in teams:
            raise NotFound(f"no team {team!r}", reason="UNKNOWN_TEAM")
        where = AuditFilter(since=since, until=until, team=team)
        records = [r async for r in self._admin.export_audit(caller, where)]
        keys = await self._admin.list_keys(caller, team, include_revoked=True)
        own = self._team_residency.get(team)
        residency = self._residency.combined(own) if own is not None else self._residency
        return build(
            team,
            since,
            until,
            records,
            keys,
            self._providers,
            residency,
            teams[team].retention_days,
            await self._last_purge_at(),
            await self._ledger.audit_sequences(since, until),
            self._clock(),
        )
