"""The Admin service: authenticates the caller's key, translates protobuf, and hands over to AdminOperations."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import grpc
import orjson
from llmgateway.v1 import admin_pb2 as pb
from llmgateway.v1 import admin_pb2_grpc

from gateway.admin.compliance import ComplianceOperations
from gateway.admin.operations import DEFAULT_GRACE_S, AdminOperations
from gateway.cache.backends import PurgeFilter
from gateway.errors import InvalidRequest
from gateway.policy.keyring import KeyRing
from gateway.records.audit import AuditFilter, AuditRecord, GroupBy, UsageFilter
from gateway.records.governance import BudgetScope, KeyRecord, Period
from gateway.server.admin_convert import (
    audit_to_proto,
    budget_from_proto,
    budget_to_proto,
    forecast_to_proto,
    key_draft_from_proto,
    key_fields_from_proto,
    key_to_proto,
    parse_enum,
    seconds,
    team_from_proto,
    team_to_proto,
    time_range,
    update_paths,
    usage_row_to_proto,
)
from gateway.server.errors import streaming, unary

Context = grpc.aio.ServicerContext[Any, Any]
_DEFAULT_USAGE_RANGE_S = 30 * 86_400.0
_MAX_AUDIT_LIMIT = 1000
_DEFAULT_REPORT_RANGE_S = 30 * 86_400.0
_EXPORT_CHUNK_BYTES = 256 * 1024


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, operations: AdminOperations, compliance: ComplianceOperations, ring: KeyRing) -> None:
        self._ops = operations
        self._compliance = compliance
        self._ring = ring

    def _caller(self, context: Context) -> KeyRecord:
        return self._ring.authenticate(context.invocation_metadata(), context.peer())

    def _key(self, record: KeyRecord) -> pb.Key:
        source = "api" if record.id.startswith("key_") else "config"
        return key_to_proto(record, source=source, budgets=self._ops.budgets_of(BudgetScope.KEY, record.id))

    @unary
    async def CreateKey(self, request: pb.CreateKeyRequest, context: Context) -> pb.CreateKeyResponse:  # noqa: N802
        caller = self._caller(context)
        draft = key_draft_from_proto(request.spec)
        budgets = [budget_from_proto(b, scope=BudgetScope.KEY, subject="-") for b in request.budgets]
        record, secret = await self._ops.create_key(caller, draft, budgets)
        return pb.CreateKeyResponse(key=secret, info=self._key(record))

    @unary
    async def ListKeys(self, request: pb.ListKeysRequest, context: Context) -> pb.ListKeysResponse:  # noqa: N802
        caller = self._caller(context)
        records = await self._ops.list_keys(caller, request.team or None, include_revoked=request.include_revoked)
        return pb.ListKeysResponse(keys=[self._key(r) for r in records])

    @unary
    async def GetKey(self, request: pb.GetKeyRequest, context: Context) -> pb.Key:  # noqa: N802
        record = await self._ops.get_key(self._caller(context), request.key_id)
        return self._key(record)

    @unary
    async def RotateKey(self, request: pb.RotateKeyRequest, context: Context) -> pb.CreateKeyResponse:  # noqa: N802
        grace = request.grace_seconds if request.HasField("grace_seconds") else DEFAULT_GRACE_S
        record, secret = await self._ops.rotate_key(self._caller(context), request.key_id, float(grace))
        return pb.CreateKeyResponse(key=secret, info=self._key(record))

    @unary
    async def RevokeKey(self, request: pb.RevokeKeyRequest, context: Context) -> pb.Key:  # noqa: N802
        record = await self._ops.revoke_key(self._caller(context), request.key_id)
        return self._key(record)

    @unary
    async def UpdateKey(self, request: pb.UpdateKeyRequest, context: Context) -> pb.Key:  # noqa: N802
        caller = self._caller(context)
        paths = update_paths(request.update_mask)
        changes = key_fields_from_proto(request.spec, paths)
        if "limits" in changes:
            current = await self._ops.get_key(caller, request.key_id)
            changes["limits"] = _merge_limits(current, changes["limits"], paths)
        record = await self._ops.update_key(caller, request.key_id, changes)
        return self._key(record)

    @unary
    async def CreateTeam(self, request: pb.CreateTeamRequest, context: Context) -> pb.Team:  # noqa: N802
        team = await self._ops.create_team(self._caller(context), team_from_proto(request.team))
        return team_to_proto(team, self._ops.budgets_of(BudgetScope.TEAM, team.name))

    @unary
    async def ListTeams(self, request: pb.ListTeamsRequest, context: Context) -> pb.ListTeamsResponse:  # noqa: N802
        teams = self._ops.list_teams(self._caller(context))
        return pb.ListTeamsResponse(
            teams=[team_to_proto(t, self._ops.budgets_of(BudgetScope.TEAM, t.name)) for t in teams]
        )

    @unary
    async def SetBudget(self, request: pb.SetBudgetRequest, context: Context) -> pb.Budget:  # noqa: N802
        budget = budget_from_proto(request.budget)
        saved = await self._ops.set_budget(self._caller(context), budget)
        spent = [s for b, s in self._ops.budgets_of(saved.scope, saved.subject) if b.period is saved.period]
        return budget_to_proto(saved, spent[0] if spent else 0.0)

    @unary
    async def GetUsage(self, request: pb.GetUsageRequest, context: Context) -> pb.GetUsageResponse:  # noqa: N802
        caller = self._caller(context)
        group_by = parse_enum(GroupBy, request.group_by, "group_by", GroupBy.TEAM)
        period = parse_enum(Period, request.forecast_period, "forecast_period", Period.MONTH)
        since, until = time_range(request, _DEFAULT_USAGE_RANGE_S, time.time())
        where = UsageFilter(since, until, request.team or None, request.key_id or None)
        rows, forecast = await self._ops.usage(caller, group_by, where, period)
        total = pb.UsageRow(
            group="total",
            requests=sum(r.requests for r in rows),
            prompt_tokens=sum(r.prompt_tokens for r in rows),
            completion_tokens=sum(r.completion_tokens for r in rows),
            cached_tokens=sum(r.cached_tokens for r in rows),
            cost_usd=sum(r.cost_usd for r in rows),
            cache_hits=sum(r.cache_hits for r in rows),
            cache_saved_usd=sum(r.cache_saved_usd for r in rows),
            deferred_calls=sum(r.deferred_calls for r in rows),
            deferred_cost_usd=sum(r.deferred_cost_usd for r in rows),
            deferred_interactive_usd=sum(r.deferred_interactive_usd for r in rows),
        )
        return pb.GetUsageResponse(
            rows=[usage_row_to_proto(r) for r in rows], total=total, forecast=forecast_to_proto(forecast)
        )

    @unary
    async def QueryAudit(self, request: pb.QueryAuditRequest, context: Context) -> pb.QueryAuditResponse:  # noqa: N802
        where = AuditFilter(
            since=seconds(request, "since"),
            until=seconds(request, "until"),
            team=request.team or None,
            key_id=request.key_id or None,
            request_id=request.request_id or None,
            status=request.status or None,
            limit=min(request.limit or 100, _MAX_AUDIT_LIMIT),
        )
        records = await self._ops.query_audit(self._caller(context), where)
        return pb.QueryAuditResponse(records=[audit_to_proto(r) for r in records])

    @streaming
    async def ExportAudit(  # noqa: N802
        self, request: pb.ExportAuditRequest, context: Context
    ) -> AsyncIterator[pb.ExportAuditChunk]:
        where = AuditFilter(since=seconds(request, "since"), until=seconds(request, "until"), team=request.team or None)
        lines: list[bytes] = []
        size = 0
        async for record in self._ops.export_audit(self._caller(context), where):
            line = audit_json_line(record)
            lines.append(line)
            size += len(line)
            if size >= _EXPORT_CHUNK_BYTES:
                yield pb.ExportAuditChunk(jsonl=b"".join(lines), records=len(lines))
                lines, size = [], 0
        if lines:
            yield pb.ExportAuditChunk(jsonl=b"".join(lines), records=len(lines))

    @unary
    async def PurgeAudit(self, request: pb.PurgeAuditRequest, context: Context) -> pb.PurgeAuditResponse:  # noqa: N802
        purged = await self._ops.purge_audit(
            self._caller(context), seconds(request, "before"), request.team or None, request.by_retention
        )
        return pb.PurgeAuditResponse(purged=purged)

    @unary
    async def PurgeCache(self, request: pb.PurgeCacheRequest, context: Context) -> pb.PurgeCacheResponse:  # noqa: N802
        where = PurgeFilter(
            team=request.team or None,
            namespace=request.namespace or None,
            model=request.model or None,
            before=seconds(request, "before"),
            entry_id=request.entry_id or None,
        )
        purged = await self._ops.purge_cache(self._caller(context), where)
        return pb.PurgeCacheResponse(purged=purged)

    @unary
    async def GetCacheStats(self, request: pb.GetCacheStatsRequest, context: Context) -> pb.CacheStats:  # noqa: N802
        stats = await self._ops.cache_stats(self._caller(context), request.team or None)
        counts = stats.counts
        return pb.CacheStats(
            backend=stats.backend,
            available=stats.available,
            entries=stats.entries,
            bytes=stats.bytes,
            max_bytes=stats.max_bytes,
            exact_hits=counts.exact_hits,
            semantic_hits=counts.semantic_hits,
            misses=counts.misses,
            semantic_rejections=counts.rejections,
            semantic_entries=stats.semantic_entries,
        )

    @unary
    async def GetComplianceReport(  # noqa: N802
        self, request: pb.GetComplianceReportRequest, context: Context
    ) -> pb.ComplianceReport:
        if not request.team:
            raise InvalidRequest("team is required: the team the report is about", metadata={"field": "team"})
        since, until = time_range(request, _DEFAULT_REPORT_RANGE_S, time.time())
        report = await self._compliance.report(self._caller(context), request.team, since, until)
        return pb.ComplianceReport(json=orjson.dumps(report.to_dict()))


def audit_json_line(record: AuditRecord) -> bytes:
    """One record as a JSON line, with its time also in ISO 8601 for people and spreadsheets."""
    value = dataclasses.asdict(record)
    value["time"] = datetime.fromtimestamp(record.at, UTC).isoformat()
    return orjson.dumps(value) + b"\n"


def _merge_limits(current: KeyRecord, given: Any, paths: frozenset[str]) -> Any:
    """Only the limits named in the mask change."""
    return dataclasses.replace(
        current.limits, **{name: getattr(given, name) for name in ("rpm", "tpm", "max_concurrent") if name in paths}
    )
