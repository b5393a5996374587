"""Protobuf <-> domain conversion for the Admin API, with validation that names the field to fix."""

from __future__ import annotations

import ipaddress
from typing import Any, TypeVar

import orjson
from google.protobuf import field_mask_pb2, timestamp_pb2
from llmgateway.v1 import admin_pb2 as pb
from llmgateway.v1 import gateway_pb2

from gateway.errors import InvalidRequest
from gateway.policy.access import check_timezone, format_hours, parse_hours, parse_weekdays
from gateway.records.audit import AuditRecord, Forecast, GroupBy, UsageRow
from gateway.records.classification import Classification
from gateway.records.governance import (
    BodyPolicy,
    Budget,
    BudgetScope,
    Conditions,
    KeyLimits,
    KeyRecord,
    Period,
    Role,
    Team,
)
from gateway.server.convert import guardrails_to_proto

E = TypeVar("E", Role, BodyPolicy, Period, BudgetScope, GroupBy)
_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEY_SPEC_PATHS = frozenset(
    {"name", "role", "models", "rpm", "tpm", "max_concurrent", "expires_at", "labels", "conditions", "team"}
)


def timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def seconds(message: Any, field: str) -> float | None:
    """An optional Timestamp field as epoch seconds; None when unset."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return float(stamp.ToNanoseconds()) / 1e9


def time_range(message: Any, default_span_s: float, now: float) -> tuple[float, float]:
    """A request's `since` and `until` as epoch seconds: unset until is now, unset since `default_span_s` before
    until. A field set to the epoch is the epoch (not "unset"). INVALID_ARGUMENT (BAD_RANGE) unless since < until."""
    until = seconds(message, "until")
    until = now if until is None else until
    since = seconds(message, "since")
    since = until - default_span_s if since is None else since
    if since >= until:
        raise InvalidRequest("since must come before until", reason="BAD_RANGE", metadata={"param": "since"})
    return since, until


def parse_enum(kind: type[E], value: str, field: str, default: E | None = None) -> E:
    if not value and default is not None:
        return default
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(v.value for v in kind)
        raise InvalidRequest(f"{field}: {value!r} is not one of {valid}", metadata={"field": field}) from None


# --- keys -----------------------------------------------------------------------------------------------------------


def key_draft_from_proto(spec: pb.KeySpec) -> KeyRecord:
    """A new key as asked for; the id, secret and times are filled in when it is issued."""
    if not spec.team:
        raise InvalidRequest("spec.team is required: every key belongs to a team", metadata={"field": "spec.team"})
    return KeyRecord(id="", prefix="", secret_hash="", **key_fields_from_proto(spec))


def update_paths(mask: field_mask_pb2.FieldMask) -> frozenset[str]:
    paths = frozenset(mask.paths)
    if not paths:
        raise InvalidRequest("update_mask is empty: name the KeySpec fields to change")
    unknown = sorted(paths - KEY_SPEC_PATHS)
    if unknown:
        raise InvalidRequest(
            f"update_mask: unknown paths {', '.join(unknown)}; valid: {', '.join(sorted(KEY_SPEC_PATHS))}"
        )
    return paths


def key_fields_from_proto(spec: pb.KeySpec, paths: frozenset[str] = KEY_SPEC_PATHS) -> dict[str, Any]:
    """The KeyRecord fields that `paths` of the spec set."""
    fields: dict[str, Any] = {}
    if "team" in paths:
        fields["team"] = spec.team
    if "role" in paths:
        fields["role"] = parse_enum(Role, spec.role, "spec.role", Role.MEMBER)
    if "name" in paths:
        fields["name"] = spec.name
    if "models" in paths:
        fields["models"] = frozenset(spec.models) if spec.models else None
    if paths & {"rpm", "tpm", "max_concurrent"}:
        fields["limits"] = KeyLimits(spec.rpm or None, spec.tpm or None, spec.max_concurrent or None)
    if "expires_at" in paths:
        fields["expires_at"] = seconds(spec, "expires_at")
    if "labels" in paths:
        fields["labels"] = dict(spec.labels)
    if "conditions" in paths:
        fields["conditions"] = conditions_from_proto(spec.conditions)
    return fields


def conditions_from_proto(conditions: pb.Conditions) -> Conditions:
    try:
        hours = parse_hours(conditions.hours) if conditions.hours else None
        weekdays = parse_weekdays(list(conditions.weekdays)) if conditions.weekdays else None
        zone = check_timezone(conditions.timezone or "UTC")
        networks = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in conditions.networks)
        level = (
            Classification.parse(conditions.max_classification)
            if conditions.max_classification
            else Classification.RESTRICTED
        )
    except ValueError as err:
        raise InvalidRequest(f"spec.conditions: {err}", metadata={"field": "spec.conditions"}) from None
    required = tuple((r.name.lower(), tuple(r.allowed_values)) for r in conditions.required_metadata if r.name)
    return Conditions(hours, weekdays, zone, networks, required, level)


def key_to_proto(record: KeyRecord, *, source: str, budgets: list[tuple[Budget, float]]) -> pb.Key:
    c = record.conditions
    conditions = pb.Conditions(
        hours=format_hours(c.hours) if c.hours is not None else "",
        weekdays=[_WEEKDAY_NAMES[d] for d in sorted(c.weekdays)] if c.weekdays is not None else [],
        timezone=c.timezone,
        networks=[str(n) for n in c.networks],
        required_metadata=[pb.MetadataRequirement(name=n, allowed_values=list(v)) for n, v in c.required_metadata],
        max_classification=c.max_classification.label,
    )
    spec = pb.KeySpec(
        team=record.team,
        role=record.role.value,
        name=record.name,
        models=sorted(record.models) if record.models is not None else [],
        rpm=record.limits.rpm or 0,
        tpm=record.limits.tpm or 0,
        max_concurrent=record.limits.max_concurrent or 0,
        expires_at=timestamp(record.expires_at),
        labels=record.labels,
        conditions=conditions,
    )
    return pb.Key(
        id=record.id,
        prefix=record.prefix,
        spec=spec,
        created_at=timestamp(record.created_at),
        revoked_at=timestamp(record.revoked_at),
        previous_valid_until=timestamp(record.previous_valid_until),
        source=source,
        budgets=[budget_to_proto(b, spent) for b, spent in budgets],
    )


# --- teams and budgets ----------------------------------------------------------------------------------------------


def team_from_proto(team: pb.Team) -> Team:
    return Team(
        name=team.name,
        bodies=parse_enum(BodyPolicy, team.body_policy, "team.body_policy", BodyPolicy.NONE),
        retention_days=team.retention_days,
        labels=dict(team.labels),
    )


def team_to_proto(team: Team, budgets: list[tuple[Budget, float]]) -> pb.Team:
    return pb.Team(
        name=team.name,
        body_policy=team.bodies.value,
        retention_days=team.retention_days,
        labels=team.labels,
        created_at=timestamp(team.created_at),
        budgets=[budget_to_proto(b, spent) for b, spent in budgets],
    )


def budget_from_proto(budget: pb.Budget, *, scope: BudgetScope | None = None, subject: str = "") -> Budget:
    if not (subject or budget.subject):
        raise InvalidRequest("budget.subject is required: the key id or team name", metadata={"field": "subject"})
    return Budget(
        scope=scope or parse_enum(BudgetScope, budget.scope, "budget.scope", BudgetScope.TEAM),
        subject=subject or budget.subject,
        period=parse_enum(Period, budget.period, "budget.period", Period.MONTH),
        hard_usd=budget.hard_usd if budget.HasField("hard_usd") else None,
        soft_usd=budget.soft_usd if budget.HasField("soft_usd") else None,
        downgrade_to=budget.downgrade_to or None,
    )


def budget_to_proto(budget: Budget, spent: float) -> pb.Budget:
    return pb.Budget(
        scope=budget.scope.value,
        subject=budget.subject,
        period=budget.period.value,
        hard_usd=budget.hard_usd,
        soft_usd=budget.soft_usd,
        downgrade_to=budget.downgrade_to or "",
        spent_usd=spent,
    )


# --- usage and audit ------------------------------------------------------------------------------------------------


def usage_row_to_proto(row: UsageRow) -> pb.UsageRow:
    return pb.UsageRow(
        group=row.group,
        requests=row.requests,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        cost_usd=row.cost_usd,
        cache_hits=row.cache_hits,
        cache_saved_usd=row.cache_saved_usd,
        deferred_calls=row.deferred_calls,
        deferred_cost_usd=row.deferred_cost_usd,
        deferred_interactive_usd=row.deferred_interactive_usd,
    )


def forecast_to_proto(forecast: Forecast) -> pb.Forecast:
    return pb.Forecast(
        period=forecast.period.value,
        period_start=timestamp(forecast.period_start),
        period_end=timestamp(forecast.period_end),
        spent_usd=forecast.spent_usd,
        forecast_usd=forecast.forecast_usd,
    )


def audit_to_proto(record: AuditRecord) -> pb.AuditRecord:
    return pb.AuditRecord(
        request_id=record.request_id,
        time=timestamp(record.at),
        key_id=record.key_id,
        team=record.team,
        peer=record.peer,
        kind=record.kind,
        model=record.model,
        route=record.route,
        served_model=record.served_model,
        provider=record.provider,
        status=record.status,
        reason=record.reason,
        error=record.error,
        latency_ms=record.latency_ms,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,
        cost_usd=record.cost_usd,
        attempts=[gateway_pb2.Attempt(**a) for a in record.attempts],
        guardrails=guardrails_to_proto(record.guardrails),
        classification=record.classification,
        request_body_json=orjson.dumps(record.request_body).decode() if record.request_body is not None else "",
        response_body=record.response_body or "",
        cache=gateway_pb2.CacheInfo(
            hit=True,
            kind=record.cache["kind"],
            similarity=record.cache["similarity"],
            entry_id=record.cache["entry_id"],
            age_seconds=record.cache["age_s"],
        )
        if record.cache is not None
        else None,
        cache_saved_usd=record.cache_saved_usd,
        batch_id=record.batch_id,
        time_to_first_chunk_ms=record.ttfc_ms,
        trace_id=record.trace_id,
        prices=_prices_to_proto(record.prices) if record.prices is not None else None,
        deferred=_deferred_to_proto(record.deferred) if record.deferred is not None else None,
    )


def _prices_to_proto(prices: dict[str, Any]) -> pb.AppliedPrices:
    return pb.AppliedPrices(
        input_per_mtok=prices["input_per_mtok"],
        output_per_mtok=prices["output_per_mtok"],
        cached_input_per_mtok=prices["cached_input_per_mtok"],
        window=prices["window"],
    )


def _deferred_to_proto(deferred: dict[str, Any]) -> pb.DeferredInfo:
    return pb.DeferredInfo(
        group=deferred.get("group", ""),
        held_ms=deferred.get("held_ms", 0.0),
        prefix_cached=deferred.get("prefix_cached", False),
        interactive_usd=deferred.get("interactive_usd", 0.0),
        waited_for_window=deferred.get("waited_for_window", ""),
        resumed_from=deferred.get("resumed_from", ""),
    )
