"""`gateway keys | teams | budget | usage | audit | replay | profiles | evaluate-policy | analytics | shadow | compare
| report`: the Admin and Insights APIs from the command line.

The admin (or team admin) key comes from env GATEWAY_ADMIN_KEY, the address from --address or env GATEWAY_ADDR;
--json prints machine-readable output (`keys create --json` puts the new key under "key").
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

import grpc
import orjson
from google.protobuf import field_mask_pb2, timestamp_pb2
from llmgateway.v1 import admin_pb2 as pb
from llmgateway.v1 import admin_pb2_grpc, gateway_pb2, insights_pb2, insights_pb2_grpc

from gateway.admin.compliance import ComplianceReport
from gateway.admin.compliance_files import render
from gateway.cli.commands import subcommand
from gateway.cli.output import print_json, print_table, to_dict
from gateway.ledger.periods import parse_duration

ADMIN_KEY_ENV = "GATEWAY_ADMIN_KEY"


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="issue, list, rotate and revoke virtual keys").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = subcommand(keys, "create", "issue a key (shown once)", _keys_create)
    create.add_argument("--team", required=True)
    _key_spec_arguments(create)
    create.add_argument("--budget-usd", action="append", default=[], metavar="AMOUNT/PERIOD", help="e.g. 10/month")
    listing = subcommand(keys, "list", "list keys", _keys_list)
    listing.add_argument("--team")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    subcommand(keys, "get", "show one key", _keys_get).add_argument("key_id")
    subcommand(keys, "revoke", "revoke a key on every worker", _keys_revoke).add_argument("key_id")
    rotate = subcommand(keys, "rotate", "issue a new secret; the old one works for the grace period", _keys_rotate)
    rotate.add_argument("key_id")
    rotate.add_argument("--grace", type=_duration, default=3600.0, help="e.g. 1h, 0s (default 1h)")
    update = subcommand(keys, "update", "change a key's models, limits, labels or conditions", _keys_update)
    update.add_argument("key_id")
    _key_spec_arguments(update)

    teams = commands.add_parser("teams", help="create and list teams").add_subparsers(required=True, metavar="ACTION")
    team = subcommand(teams, "create", "create a team (admins)", _teams_create)
    team.add_argument("name")
    team.add_argument("--bodies", choices=["none", "redacted", "full"], default="none", help="audit body policy")
    team.add_argument("--retention-days", type=int, default=0)
    team.add_argument("--label", action="append", default=[], metavar="NAME=VALUE")
    subcommand(teams, "list", "list teams with their budgets", _teams_list)

    budget = commands.add_parser("budget", help="set budgets").add_subparsers(required=True, metavar="ACTION")
    setting = subcommand(budget, "set", "set (or with no caps, remove) a team's or key's budget", _budget_set)
    subject = setting.add_mutually_exclusive_group(required=True)
    subject.add_argument("--team")
    subject.add_argument("--key", dest="key_id")
    setting.add_argument("--period", choices=["day", "month"], default="month")
    setting.add_argument("--hard-usd", type=float)
    setting.add_argument("--soft-usd", type=float)
    setting.add_argument("--downgrade-to", default="", help="model for calls past the soft cap")

    usage = subcommand(commands, "usage", "spend and tokens over a time range, with a forecast", _usage)
    usage.add_argument("--team")
    usage.add_argument("--key", dest="key_id")
    usage.add_argument("--since", type=_duration, default=30 * 86_400.0, help="how far back, e.g. 7d (default 30d)")
    usage.add_argument("--group-by", choices=["key", "team", "model", "provider"], default="team")
    usage.add_argument("--period", choices=["day", "month"], default="month", help="the period to forecast")

    cache = commands.add_parser("cache", help="response cache statistics and purges").add_subparsers(
        required=True, metavar="ACTION"
    )
    subcommand(cache, "stats", "entries, size, hits and misses", _cache_stats).add_argument("--team")
    purge = subcommand(cache, "purge", "delete cache entries (every filter given must match)", _cache_purge)
    purge.add_argument("--team")
    purge.add_argument("--namespace")
    purge.add_argument("--model", help="the model or route the entries answered")
    purge.add_argument("--older-than", type=_duration, metavar="AGE", help="e.g. 1h, 7d")
    purge.add_argument("--entry", dest="entry_id", help="one entry, by the entry_id a response reported")
    purge.add_argument("--all", action="store_true", help="confirm a purge of the whole cache (no filter)")

    audit = subcommand(commands, "audit", "query the audit log", _audit_query)
    audit.add_argument("--request-id")
    audit.add_argument("--team")
    audit.add_argument("--key", dest="key_id")
    audit.add_argument("--status", help="a gRPC code name, e.g. PERMISSION_DENIED")
    audit.add_argument("--since", type=_duration, help="how far back, e.g. 1h")
    audit.add_argument("--limit", type=int, default=20)
    audit.add_argument("--export", metavar="FILE", help="write every matching record as JSON lines ('-' for stdout)")
    audit.add_argument("--purge-older-than", type=_duration, metavar="AGE", help="delete records older than AGE")
    audit.add_argument("--purge-by-retention", action="store_true", help="delete what is past each team's retention")

    replay = subcommand(commands, "replay", "run an audited call again, on its model or another", _replay)
    replay.add_argument("request_id")
    replay.add_argument("--target", default="", help="another model or route")
    replay.add_argument("--temperature", type=float)
    replay.add_argument("--max-tokens", type=int)
    profiles = subcommand(commands, "profiles", "the learned routes' profiles per query type and model", _profiles)
    profiles.add_argument("--route", default="", help="one learned route (default: all)")
    profiles.add_argument("--type", dest="query_type", default="", help="one query type (default: all)")
    evaluate = subcommand(
        commands, "evaluate-policy", "estimate offline what a learned route's policies would have earned", _evaluate
    )
    evaluate.add_argument("--route", required=True, help="a learned route")
    evaluate.add_argument("--since", type=_duration, default=30 * 86_400.0, help="how far back, e.g. 7d (default 30d)")
    analytics = subcommand(
        commands, "analytics", "spend with cheaper alternatives, and how call features relate to outcomes", _analytics
    )
    analytics.add_argument("--since", type=_duration, default=7 * 86_400.0, help="how far back, e.g. 30d (default 7d)")
    analytics.add_argument("--team", default="", help="one team (admins; a team admin sees its own)")
    analytics.add_argument("--route", default="", help="one route")
    analytics.add_argument("--metric", default="", help="the feedback metric taken as quality (default: the first)")
    shadow = commands.add_parser("shadow", help="shadow traffic: how a route's shadow model compares").add_subparsers(
        required=True, metavar="ACTION"
    )
    shadow_report = subcommand(
        shadow, "report", "the shadow copies of a route's calls, compared with what answered", _shadow
    )
    shadow_report.add_argument("route")
    shadow_report.add_argument(
        "--since", type=_duration, default=7 * 86_400.0, help="how far back, e.g. 1d (default 7d)"
    )
    shadow_report.add_argument("--team", default="", help="one team's calls (admins; a team admin sees its own)")
    report = commands.add_parser("report", help="reports").add_subparsers(required=True, metavar="REPORT")
    compliance = subcommand(report, "compliance", "one team's compliance report over a period", _report_compliance)
    compliance.add_argument("--team", required=True)
    compliance.add_argument("--since", type=_duration, default=30 * 86_400.0, help="how far back (default 30d)")
    compliance.add_argument("--format", choices=["json", "csv", "pdf"], default="json")
    compliance.add_argument("--output", "-o", help="file to write (default: stdout; a PDF needs a file)")
    compare = subcommand(commands, "compare", "send one prompt to several models or routes, side by side", _compare)
    compare.add_argument("--targets", required=True, help="comma-separated models or routes (up to 8)")
    compare.add_argument("--system", help="a system message placed before the prompt")
    compare.add_argument("--max-tokens", type=int)
    compare.add_argument("prompt", help="the prompt; '-' reads it from stdin")


def _key_spec_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--name")
    command.add_argument("--role", choices=["member", "team-admin", "admin"])
    command.add_argument("--models", help="comma-separated models and routes the key may call (default: all)")
    command.add_argument("--rpm", type=int, help="requests per minute")
    command.add_argument("--tpm", type=int, help="tokens per minute")
    command.add_argument("--concurrent", type=int, help="calls in flight at once")
    command.add_argument("--expires-in", type=_duration, help="e.g. 90d")
    command.add_argument("--label", action="append", metavar="NAME=VALUE")
    command.add_argument("--hours", help="allowed local hours, e.g. 09:00-18:00")
    command.add_argument("--weekdays", help="allowed days, e.g. mon,tue,wed,thu,fri")
    command.add_argument("--timezone", help="IANA zone of --hours and --weekdays (default UTC)")
    command.add_argument("--networks", help="comma-separated CIDRs the caller must come from")
    command.add_argument(
        "--require-metadata", action="append", metavar="NAME[=V1|V2]", help="request metadata that must be present"
    )
    command.add_argument("--max-classification", choices=["public", "internal", "confidential", "restricted"])


# --- plumbing -------------------------------------------------------------------------------------------------------


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[tuple[grpc.Channel, dict[str, Any]]]:
    """A channel to the gateway and the call options (admin key, deadline) every admin command sends."""
    key = os.environ.get(ADMIN_KEY_ENV)
    if not key:
        raise SystemExit(f"error: set {ADMIN_KEY_ENV} to an admin or team-admin key")
    with grpc.insecure_channel(args.address) as channel:
        yield channel, {"metadata": (("authorization", f"Bearer {key}"),), "timeout": args.timeout}


@contextmanager
def _admin(args: argparse.Namespace) -> Iterator[tuple[admin_pb2_grpc.AdminStub, dict[str, Any]]]:
    with _connect(args) as (channel, call):
        yield admin_pb2_grpc.AdminStub(channel), call


@contextmanager
def _insights(args: argparse.Namespace) -> Iterator[tuple[insights_pb2_grpc.InsightsStub, dict[str, Any]]]:
    with _connect(args) as (channel, call):
        yield insights_pb2_grpc.InsightsStub(channel), call


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


def _labels(items: list[str] | None) -> dict[str, str]:
    labels = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"error: label {item!r} must look like NAME=VALUE")
        labels[name] = value
    return labels


def _when(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return datetime.fromtimestamp(stamp.seconds, UTC).strftime("%Y-%m-%d %H:%M")


# --- keys -----------------------------------------------------------------------------------------------------------


def _key_spec(args: argparse.Namespace) -> tuple[pb.KeySpec, list[str]]:
    """The spec and the field paths the arguments set (for UpdateKey's mask)."""
    spec = pb.KeySpec(team=getattr(args, "team", "") or "")
    paths: list[str] = []
    if args.name is not None:
        spec.name, paths = args.name, [*paths, "name"]
    if args.role is not None:
        spec.role, paths = args.role, [*paths, "role"]
    if args.models is not None:
        spec.models.extend(m.strip() for m in args.models.split(",") if m.strip())
        paths.append("models")
    for field, value in (("rpm", args.rpm), ("tpm", args.tpm), ("max_concurrent", args.concurrent)):
        if value is not None:
            setattr(spec, field, value)
            paths.append(field)
    if args.expires_in is not None:
        spec.expires_at.CopyFrom(_timestamp(time.time() + args.expires_in))
        paths.append("expires_at")
    if args.label is not None:
        spec.labels.update(_labels(args.label))
        paths.append("labels")
    conditions = pb.Conditions(
        hours=args.hours or "",
        weekdays=[d.strip() for d in (args.weekdays or "").split(",") if d.strip()],
        timezone=args.timezone or "",
        networks=[n.strip() for n in (args.networks or "").split(",") if n.strip()],
        max_classification=args.max_classification or "",
    )
    for item in args.require_metadata or []:
        name, _, values = item.partition("=")
        conditions.required_metadata.append(
            pb.MetadataRequirement(name=name, allowed_values=[v for v in values.split("|") if v])
        )
    if conditions.ByteSize():
        spec.conditions.CopyFrom(conditions)
        paths.append("conditions")
    return spec, paths


def _budgets(values: list[str]) -> list[pb.Budget]:
    budgets = []
    for value in values:
        amount, _, period = value.partition("/")
        try:
            budgets.append(pb.Budget(period=period or "month", hard_usd=float(amount.lstrip("$"))))
        except ValueError:
            raise SystemExit(f"error: --budget-usd {value!r} must look like 10/month or 2.5/day") from None
    return budgets


def _print_key(key: pb.Key) -> None:
    spec = key.spec
    lines = [
        ("id", key.id),
        ("prefix", key.prefix or "-"),
        ("team", spec.team or "-"),
        ("role", spec.role),
        ("name", spec.name or "-"),
        ("models", ",".join(spec.models) or "all"),
        ("limits", f"rpm={spec.rpm or '-'} tpm={spec.tpm or '-'} concurrent={spec.max_concurrent or '-'}"),
        ("expires", _when(spec.expires_at)),
        ("revoked", _when(key.revoked_at)),
        ("source", key.source),
    ]
    lines += [(f"budget/{b.period}", _budget_text(b)) for b in key.budgets]
    for name, value in lines:
        sys.stdout.write(f"{name:<14}{value}\n")


def _budget_text(budget: pb.Budget) -> str:
    parts = [f"spent ${budget.spent_usd:.4f}"]
    if budget.HasField("hard_usd"):
        parts.append(f"hard ${budget.hard_usd:.2f}")
    if budget.HasField("soft_usd"):
        parts.append(f"soft ${budget.soft_usd:.2f} -> {budget.downgrade_to}")
    return ", ".join(parts)


def _keys_create(args: argparse.Namespace) -> int:
    spec, _ = _key_spec(args)
    with _admin(args) as (stub, call):
        response: pb.CreateKeyResponse = stub.CreateKey(
            pb.CreateKeyRequest(spec=spec, budgets=_budgets(args.budget_usd)), **call
        )
    if args.json:
        print_json({"key": response.key, **to_dict(response.info)})
        return 0
    _print_key(response.info)
    sys.stdout.write(f"\nkey (shown only this once):\n\n    {response.key}\n")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        response: pb.ListKeysResponse = stub.ListKeys(
            pb.ListKeysRequest(team=args.team or "", include_revoked=args.all), **call
        )
    if args.json:
        print_json([to_dict(k) for k in response.keys])
        return 0
    rows = [("ID", "PREFIX", "TEAM", "ROLE", "NAME", "MODELS", "CREATED", "REVOKED")]
    rows += [
        (
            k.id,
            k.prefix or "-",
            k.spec.team or "-",
            k.spec.role,
            k.spec.name or "-",
            ",".join(k.spec.models) or "all",
            _when(k.created_at),
            _when(k.revoked_at),
        )
        for k in response.keys
    ]
    print_table(rows)
    return 0


def _show_key(args: argparse.Namespace, key: pb.Key) -> int:
    if args.json:
        print_json(to_dict(key))
    else:
        _print_key(key)
    return 0


def _keys_get(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        return _show_key(args, stub.GetKey(pb.GetKeyRequest(key_id=args.key_id), **call))


def _keys_revoke(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        return _show_key(args, stub.RevokeKey(pb.RevokeKeyRequest(key_id=args.key_id), **call))


def _keys_update(args: argparse.Namespace) -> int:
    spec, paths = _key_spec(args)
    if not paths:
        raise SystemExit("error: nothing to update; pass the fields to change, e.g. --models a,b")
    request = pb.UpdateKeyRequest(key_id=args.key_id, spec=spec, update_mask=field_mask_pb2.FieldMask(paths=paths))
    with _admin(args) as (stub, call):
        return _show_key(args, stub.UpdateKey(request, **call))


def _keys_rotate(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        response: pb.CreateKeyResponse = stub.RotateKey(
            pb.RotateKeyRequest(key_id=args.key_id, grace_seconds=int(args.grace)), **call
        )
    if args.json:
        print_json({"key": response.key, **to_dict(response.info)})
        return 0
    _print_key(response.info)
    sys.stdout.write(f"\nnew key (shown only this once; the old one works for {args.grace:.0f} s):\n\n")
    sys.stdout.write(f"    {response.key}\n")
    return 0


# --- teams, budgets, usage, audit -----------------------------------------------------------------------------------


def _teams_create(args: argparse.Namespace) -> int:
    team = pb.Team(
        name=args.name, body_policy=args.bodies, retention_days=args.retention_days, labels=_labels(args.label)
    )
    with _admin(args) as (stub, call):
        created: pb.Team = stub.CreateTeam(pb.CreateTeamRequest(team=team), **call)
    if args.json:
        print_json(to_dict(created))
    else:
        sys.stdout.write(f"team {created.name} created (bodies {created.body_policy}, {created.retention_days} days)\n")
    return 0


def _teams_list(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        response: pb.ListTeamsResponse = stub.ListTeams(pb.ListTeamsRequest(), **call)
    if args.json:
        print_json([to_dict(t) for t in response.teams])
        return 0
    rows = [("TEAM", "BODIES", "RETENTION", "BUDGETS")]
    rows += [
        (
            t.name,
            t.body_policy,
            f"{t.retention_days} d",
            "; ".join(f"{b.period}: {_budget_text(b)}" for b in t.budgets) or "-",
        )
        for t in response.teams
    ]
    print_table(rows)
    return 0


def _budget_set(args: argparse.Namespace) -> int:
    budget = pb.Budget(
        scope="team" if args.team else "key",
        subject=args.team or args.key_id,
        period=args.period,
        hard_usd=args.hard_usd,
        soft_usd=args.soft_usd,
        downgrade_to=args.downgrade_to,
    )
    with _admin(args) as (stub, call):
        saved: pb.Budget = stub.SetBudget(pb.SetBudgetRequest(budget=budget), **call)
    if args.json:
        print_json(to_dict(saved))
    else:
        sys.stdout.write(f"{saved.scope} {saved.subject} {saved.period}: {_budget_text(saved)}\n")
    return 0


def _cache_stats(args: argparse.Namespace) -> int:
    with _admin(args) as (stub, call):
        stats: pb.CacheStats = stub.GetCacheStats(pb.GetCacheStatsRequest(team=args.team or ""), **call)
    if args.json:
        print_json(to_dict(stats))
        return 0
    bound = f" of {stats.max_bytes:,}" if stats.max_bytes else ""
    sys.stdout.write(
        f"backend {stats.backend} ({'available' if stats.available else 'UNAVAILABLE'}): {stats.entries:,} entries, "
        f"{stats.bytes:,}{bound} bytes, {stats.semantic_entries:,} in this process's semantic index\n"
        f"this process: {stats.exact_hits:,} exact hits, {stats.semantic_hits:,} semantic hits, "
        f"{stats.misses:,} misses, {stats.semantic_rejections:,} near-misses refused\n"
    )
    return 0


def _cache_purge(args: argparse.Namespace) -> int:
    request = pb.PurgeCacheRequest(
        team=args.team or "", namespace=args.namespace or "", model=args.model or "", entry_id=args.entry_id or ""
    )
    if args.older_than is not None:
        request.before.CopyFrom(_timestamp(time.time() - args.older_than))
    if request.ByteSize() == 0 and not args.all:
        sys.stderr.write("gateway cache purge: give a filter, or --all to purge the whole cache\n")
        return 2
    with _admin(args) as (stub, call):
        response: pb.PurgeCacheResponse = stub.PurgeCache(request, **call)
    if args.json:
        print_json(to_dict(response))
    else:
        sys.stdout.write(f"purged {response.purged} entries\n")
    return 0


def _usage(args: argparse.Namespace) -> int:
    now = time.time()
    request = pb.GetUsageRequest(
        group_by=args.group_by,
        since=_timestamp(now - args.since),
        until=_timestamp(now),
        team=args.team or "",
        key_id=args.key_id or "",
        forecast_period=args.period,
    )
    with _admin(args) as (stub, call):
        response: pb.GetUsageResponse = stub.GetUsage(request, **call)
    if args.json:
        print_json(to_dict(response))
        return 0
    rows = [
        (
            args.group_by.upper(),
            "REQUESTS",
            "PROMPT",
            "COMPLETION",
            "CACHED",
            "COST $",
            "CACHE HITS",
            "SAVED $",
            "DEFERRED",
            "DEFERRED $",
            "AT ONCE $",
        )
    ]
    rows += [
        (
            r.group,
            str(r.requests),
            str(r.prompt_tokens),
            str(r.completion_tokens),
            str(r.cached_tokens),
            f"{r.cost_usd:.6f}",
            str(r.cache_hits),
            f"{r.cache_saved_usd:.6f}",
            str(r.deferred_calls),
            f"{r.deferred_cost_usd:.6f}",
            f"{r.deferred_interactive_usd:.6f}",
        )
        for r in [*response.rows, response.total]
    ]
    print_table(rows)
    forecast = response.forecast
    sys.stdout.write(
        f"\nthis {forecast.period}: ${forecast.spent_usd:.4f} spent, forecast ${forecast.forecast_usd:.4f} "
        f"by {_when(forecast.period_end)} UTC\n"
    )
    return 0


def _audit_query(args: argparse.Namespace) -> int:
    if args.purge_older_than is not None or args.purge_by_retention:
        return _audit_purge(args)
    since = _timestamp(time.time() - args.since) if args.since is not None else None
    if args.export is not None:
        return _audit_export(args, since)
    request = pb.QueryAuditRequest(
        request_id=args.request_id or "",
        team=args.team or "",
        key_id=args.key_id or "",
        status=args.status or "",
        since=since,
        limit=args.limit,
    )
    with _admin(args) as (stub, call):
        response: pb.QueryAuditResponse = stub.QueryAudit(request, **call)
    if args.json:
        print_json([to_dict(r) for r in response.records])
        return 0
    rows = [("TIME", "REQUEST", "KEY", "TEAM", "MODEL", "SERVED BY", "STATUS", "TOKENS", "COST $", "MS")]
    rows += [
        (
            _when(r.time),
            r.request_id,
            r.key_id or "-",
            r.team or "-",
            r.model,
            f"{r.served_model}@{r.provider}" if r.provider else "-",
            r.status + (f" {r.reason}" if r.reason else ""),
            f"{r.prompt_tokens}+{r.completion_tokens}",
            f"{r.cost_usd:.6f}",
            f"{r.latency_ms:.0f}",
        )
        for r in response.records
    ]
    print_table(rows)
    return 0


def _audit_export(args: argparse.Namespace, since: timestamp_pb2.Timestamp | None) -> int:
    request = pb.ExportAuditRequest(since=since, team=args.team or "")
    out = sys.stdout.buffer if args.export == "-" else open(args.export, "wb")  # noqa: SIM115 - closed below
    count = 0
    try:
        with _admin(args) as (stub, call):
            for chunk in stub.ExportAudit(request, **call):
                out.write(chunk.jsonl)
                count += chunk.records
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if args.export != "-":
        sys.stderr.write(f"{count} audit records written to {args.export}\n")
    return 0


def _audit_purge(args: argparse.Namespace) -> int:
    request = pb.PurgeAuditRequest(team=args.team or "", by_retention=args.purge_by_retention)
    if args.purge_older_than is not None:
        request.before.CopyFrom(_timestamp(time.time() - args.purge_older_than))
    with _admin(args) as (stub, call):
        response: pb.PurgeAuditResponse = stub.PurgeAudit(request, **call)
    if args.json:
        print_json(to_dict(response))
    else:
        sys.stdout.write(f"{response.purged} audit records purged\n")
    return 0


# --- insights -------------------------------------------------------------------------------------------------------


def _replay(args: argparse.Namespace) -> int:
    overrides = insights_pb2.ParameterOverrides(temperature=args.temperature, max_tokens=args.max_tokens)
    request = insights_pb2.ReplayRequest(request_id=args.request_id, target=args.target, overrides=overrides)
    with _insights(args) as (stub, call):
        response: insights_pb2.ReplayResponse = stub.Replay(request, **call)
    if args.json:
        print_json(response)
        return 0
    rows = [("", "ORIGINAL", "REPLAYED")]
    for name, left, right in (
        ("request", response.original.id, response.replayed.id),
        ("model", f"{response.original.model}@{response.original.provider}", response.replayed.model),
        ("latency ms", f"{response.original_latency_ms:.0f}", f"{response.replayed_latency_ms:.0f}"),
        (
            "tokens",
            f"{response.original.usage.prompt_tokens}+{response.original.usage.completion_tokens}",
            f"{response.replayed.usage.prompt_tokens}+{response.replayed.usage.completion_tokens}",
        ),
        ("cost $", f"{response.original.usage.cost_usd:.6f}", f"{response.replayed.usage.cost_usd:.6f}"),
    ):
        rows.append((name, left, right))
    print_table(rows)
    sys.stdout.write(f"\nsimilarity {response.similarity:.2f}\n\n--- original ---\n{response.original.message.content}")
    sys.stdout.write(f"\n\n--- replayed ---\n{response.replayed.message.content}\n")
    return 0


_ProfileFigure = Literal["error_rate", "refusal_rate", "latency_p50_s", "latency_p90_s", "cost_usd"]


def _profiles(args: argparse.Namespace) -> int:
    request = insights_pb2.GetProfilesRequest(route=args.route, query_type=args.query_type)
    with _insights(args) as (stub, call):
        response: insights_pb2.GetProfilesResponse = stub.GetProfiles(request, **call)
    if args.json:
        print_json(response)
        return 0

    def shown(profile: insights_pb2.ModelProfile, field: _ProfileFigure, form: str) -> str:
        return format(getattr(profile, field), form) if profile.HasField(field) else "-"

    rows = [
        (
            "ROUTE",
            "QUERY TYPE",
            "MODEL",
            "CALLS",
            "FEEDBACK",
            "QUALITY",
            "ERRORS",
            "REFUSALS",
            "P50 S",
            "P90 S",
            "COST $",
        )
    ]
    for p in response.profiles:
        quality = "-" if not p.HasField("quality") else f"{p.quality:.2f}±{p.quality_sd:.2f}"
        rows.append(
            (
                p.route,
                p.query_type,
                p.model,
                f"{p.calls:.1f}",
                f"{p.feedback:.1f}",
                quality,
                shown(p, "error_rate", ".1%"),
                shown(p, "refusal_rate", ".1%"),
                shown(p, "latency_p50_s", ".2f"),
                shown(p, "latency_p90_s", ".2f"),
                shown(p, "cost_usd", ".6f"),
            )
        )
    print_table(rows)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    request = insights_pb2.EvaluatePolicyRequest(route=args.route, since=_timestamp(time.time() - args.since))
    with _insights(args) as (stub, call):
        response: insights_pb2.EvaluatePolicyResponse = stub.EvaluatePolicy(request, **call)
    if args.json:
        print_json(response)
        return 0

    def interval(value: insights_pb2.PolicyEstimateValue, form: str) -> str:
        return f"{value.value:{form}} [{value.low:{form}}, {value.high:{form}}]"

    rows = [("POLICY", "OBJECTIVE (95% CI)", "QUALITY (95% CI)", "COST $", "SUPPORT", "MATCHED", "")]
    for p in response.policies:
        if p.estimable:
            figures = (interval(p.objective, ".3f"), interval(p.quality, ".3f"), f"{p.cost_usd.value:.6f}")
        else:
            figures = ("not estimable", "-", "-")
        rows.append((p.policy, *figures, f"{p.support:.0%}", str(p.matched), p.reason))
    sys.stdout.write(f"route {response.route}: {response.rated_calls} calls with feedback\n")
    print_table(rows)
    return 0


def _analytics(args: argparse.Namespace) -> int:
    request = insights_pb2.GetAnalyticsRequest(
        team=args.team, route=args.route, quality_metric=args.metric, since=_timestamp(time.time() - args.since)
    )
    with _insights(args) as (stub, call):
        response: insights_pb2.GetAnalyticsResponse = stub.GetAnalytics(request, **call)
    if args.json:
        print_json(response)
        return 0
    spend = [("TEAM", "MODEL", "ROUTE", "CALLS", "COST $", "CHEAPEST", "SAVING $")]
    spend += [
        (r.team, r.model, r.route or "-", str(r.calls), f"{r.cost_usd:.6f}", r.cheapest_model, f"{r.saving_usd:.6f}")
        for r in response.rows
    ]
    print_table(spend)
    sys.stdout.write(f"\nrelationships in {response.analysed_calls} answered calls (associations, not causes)\n")
    related = [("MODEL", "FEATURE", "OUTCOME", "CALLS", "ETA²", "MOST APART (MEAN, COHEN'S D)")]
    for r in sorted(response.relationships, key=lambda r: -r.eta_squared):
        apart = max(r.groups, key=lambda g: abs(g.effect))
        related.append(
            (
                r.model,
                r.feature,
                r.outcome,
                str(r.calls),
                f"{r.eta_squared:.2f}",
                f"{apart.value}: {apart.mean:.4g}, d={apart.effect:+.2f}",
            )
        )
    print_table(related)
    metric = response.quality_metric or "none declared"
    sys.stdout.write(f"\ncheaper models (quality metric: {metric})\n")
    cheaper = [("QUERY TYPE", "MODEL", "CHEAPER", "BASIS", "VALUE (95% CI)", "EVIDENCE", "COST RATIO", "AS WELL")]
    cheaper += [
        (
            a.query_type,
            a.model,
            a.cheaper_model,
            a.basis,
            f"{a.value:+.3f} [{a.low:+.3f}, {a.high:+.3f}]",
            str(a.evidence),
            f"{a.cost_ratio:.2f}",
            "yes" if a.as_well else "no",
        )
        for a in response.cheaper
    ]
    print_table(cheaper)
    sys.stdout.write(
        f"\n{response.share_handled_by_cheaper:.0%} of the calls with a query type could be handled as well by a "
        f"cheaper model, costing ${response.cheaper_saving_usd:.6f} less\n"
    )
    return 0


def _shadow(args: argparse.Namespace) -> int:
    request = insights_pb2.GetAnalyticsRequest(
        route=args.route, team=args.team, since=_timestamp(time.time() - args.since)
    )
    with _insights(args) as (stub, call):
        response: insights_pb2.GetAnalyticsResponse = stub.GetAnalytics(request, **call)
    if args.json:
        print_json(list(response.shadows))
        return 0
    if not response.shadows:
        sys.stdout.write(f"no shadow copies of route {args.route} in that range\n")
        return 0
    rows = [
        (
            "PRIMARY",
            "SHADOW",
            "MIRRORED",
            "ANSWERED",
            "FAILED",
            "REFUSED",
            "OVER BUDGET",
            "BUSY",
            "SIMILARITY",
            "MS",
            "COST $",
        )
    ]
    rows += [
        (
            s.primary_model,
            s.shadow_model,
            str(s.mirrored),
            str(s.answered),
            str(s.failed),
            str(s.refused),
            str(s.over_budget),
            str(s.busy),
            f"{s.mean_similarity:.2f}",
            f"{s.primary_latency_ms:.0f} -> {s.shadow_latency_ms:.0f}",
            f"{s.primary_cost_usd:.6f} -> {s.shadow_cost_usd:.6f}",
        )
        for s in response.shadows
    ]
    sys.stdout.write(f"route {args.route}: shadow copies compared with the answers callers got\n")
    print_table(rows)
    return 0


def _report_compliance(args: argparse.Namespace) -> int:
    now = time.time()
    request = pb.GetComplianceReportRequest(team=args.team, since=_timestamp(now - args.since), until=_timestamp(now))
    with _admin(args) as (stub, call):
        answer: pb.ComplianceReport = stub.GetComplianceReport(request, **call)
    report = ComplianceReport.from_dict(orjson.loads(answer.json))
    document = render(report, args.format)
    if args.output:
        with open(args.output, "wb") as out:
            out.write(document)
        print(f"wrote {args.output} ({len(document):,} bytes)", file=sys.stderr)
    elif args.format == "pdf":
        raise SystemExit("error: a PDF goes to a file: add --output FILE")
    else:
        sys.stdout.buffer.write(document)
    return 0


def _compare(args: argparse.Namespace) -> int:
    messages = [gateway_pb2.Message(role="system", content=args.system)] if args.system else []
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    messages.append(gateway_pb2.Message(role="user", content=prompt))
    chat = gateway_pb2.ChatRequest(messages=messages, max_tokens=args.max_tokens)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    with _insights(args) as (stub, call):
        response: insights_pb2.CompareResponse = stub.Compare(
            insights_pb2.CompareRequest(request=chat, targets=targets), **call
        )
    if args.json:
        print_json(response)
        return 0
    rows = [("TARGET", "SERVED BY", "MS", "FIRST CHUNK MS", "TOKENS", "COST $", "STATUS")]
    for result in response.results:
        answer = result.response
        rows.append(
            (
                result.target,
                f"{answer.model}@{answer.provider}" if result.HasField("response") else "-",
                f"{result.latency_ms:.0f}",
                f"{result.time_to_first_chunk_ms:.0f}",
                f"{answer.usage.prompt_tokens}+{answer.usage.completion_tokens}"
                if result.HasField("response")
                else "-",
                f"{answer.usage.cost_usd:.6f}" if result.HasField("response") else "-",
                result.error.code or "OK",
            )
        )
    print_table(rows)
    for similarity in response.similarities:
        sys.stdout.write(f"similarity {similarity.a} ~ {similarity.b}: {similarity.score:.2f}\n")
    for result in response.results:
        text = result.response.message.content if result.HasField("response") else result.error.message
        sys.stdout.write(f"\n--- {result.target} ---\n{text}\n")
    return 0
