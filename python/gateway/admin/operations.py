"""The Admin API's operations on domain records: who may do what (admins everything, team admins their own team),
persisting the change, then applying it to this worker's live view at once."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.cache.backends import BackendUnavailable, PurgeFilter
from gateway.cache.service import CacheStats, ResponseCache
from gateway.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied, Unavailable
from gateway.ledger.periods import period_bounds
from gateway.ledger.retention import Retention
from gateway.policy.access import check_admin, check_manages
from gateway.policy.keys import KEY_PREFIX, hash_key, new_key
from gateway.policy.tenancy import Tenancy
from gateway.records.audit import AuditFilter, AuditRecord, Forecast, GroupBy, UsageFilter, UsageRow
from gateway.records.governance import Budget, BudgetScope, KeyRecord, Period, Role, Team
from gateway.store.ledger import LedgerStore

DEFAULT_GRACE_S = 3600
_VISIBLE_CHARS = len(KEY_PREFIX) + 6
_FORECAST_WINDOW_S = {Period.DAY: 86_400.0, Period.MONTH: 7 * 86_400.0}
_ROLE_RANK = {Role.MEMBER: 0, Role.TEAM_ADMIN: 1, Role.ADMIN: 2}


class AdminOperations:
    def __init__(
        self,
        tenancy: Tenancy,
        ledger: LedgerStore,
        retention: Retention,
        known_models: frozenset[str],
        cache: ResponseCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tenancy = tenancy
        self._ledger = ledger
        self._retention = retention
        self._models = known_models
        self._cache = cache
        self._clock = clock

    # --- keys -------------------------------------------------------------------------------------------------------

    async def create_key(self, caller: KeyRecord, draft: KeyRecord, budgets: list[Budget]) -> tuple[KeyRecord, str]:
        """`draft` holds what the caller asked for; the id, secret and times are made here."""
        self._check_key_fields(caller, draft)
        if draft.team not in self._tenancy.teams:
            raise FailedPrecondition(
                f"team {draft.team!r} does not exist; create it first (CreateTeam)", reason="UNKNOWN_TEAM"
            )
        secret = new_key()
        now = self._clock()
        record = dataclasses.replace(
            draft,
            id="key_" + secrets.token_hex(6),
            prefix=secret[:_VISIBLE_CHARS],
            secret_hash=hash_key(secret),
            created_at=now,
            updated_at=now,
            revoked_at=None,
            previous_hash=None,
            previous_valid_until=None,
        )
        await self._tenancy.store.insert_key(record)
        await self._tenancy.put_key(record)
        for budget in budgets:
            await self._save_budget(dataclasses.replace(budget, scope=BudgetScope.KEY, subject=record.id))
        return record, secret

    async def list_keys(self, caller: KeyRecord, team: str | None, *, include_revoked: bool) -> list[KeyRecord]:
        if caller.role is not Role.ADMIN:
            check_manages(caller, team or caller.team)
            team = caller.team
        records = await self._tenancy.store.list_keys(team)
        return [r for r in records if include_revoked or r.revoked_at is None]

    async def get_key(self, caller: KeyRecord, key_id: str) -> KeyRecord:
        record = await self._tenancy.store.get_key(key_id)
        if record is None:
            if key_id in self._tenancy.config_key_ids:
                config_key = self._tenancy.ring.get(key_id)
                if config_key is not None:
                    check_manages(caller, config_key.team)
                    return config_key
            raise NotFound(f"no key with id {key_id!r}", reason="UNKNOWN_KEY")
        check_manages(caller, record.team)
        return record

    async def rotate_key(self, caller: KeyRecord, key_id: str, grace_s: float) -> tuple[KeyRecord, str]:
        record = await self._managed_api_key(caller, key_id)
        if record.revoked_at is not None:
            raise FailedPrecondition(f"key {key_id} is revoked; issue a new key instead", reason="KEY_REVOKED")
        secret = new_key()
        now = self._clock()
        rotated = dataclasses.replace(
            record,
            prefix=secret[:_VISIBLE_CHARS],
            secret_hash=hash_key(secret),
            previous_hash=record.secret_hash if grace_s > 0 else None,
            previous_valid_until=now + grace_s if grace_s > 0 else None,
            updated_at=now,
        )
        await self._tenancy.store.replace_key(rotated)
        await self._tenancy.put_key(rotated)
        return rotated, secret

    async def revoke_key(self, caller: KeyRecord, key_id: str) -> KeyRecord:
        record = await self._managed_api_key(caller, key_id)
        if record.revoked_at is not None:
            return record
        now = self._clock()
        revoked = dataclasses.replace(
            record, revoked_at=now, previous_hash=None, previous_valid_until=None, updated_at=now
        )
        await self._tenancy.store.replace_key(revoked)
        await self._tenancy.put_key(revoked)
        return revoked

    async def update_key(self, caller: KeyRecord, key_id: str, changes: dict[str, Any]) -> KeyRecord:
        record = await self._managed_api_key(caller, key_id)
        if "team" in changes and changes["team"] != record.team:
            raise InvalidRequest("a key's team cannot change; issue a key in the other team", reason="TEAM_IMMUTABLE")
        updated = dataclasses.replace(record, **changes, updated_at=self._clock())
        self._check_key_fields(caller, updated)
        await self._tenancy.store.replace_key(updated)
        await self._tenancy.put_key(updated)
        return updated

    async def _managed_api_key(self, caller: KeyRecord, key_id: str) -> KeyRecord:
        if key_id in self._tenancy.config_key_ids:
            raise FailedPrecondition(
                f"key {key_id!r} is declared in the config file; change it there", reason="CONFIG_KEY"
            )
        return await self.get_key(caller, key_id)

    def _check_key_fields(self, caller: KeyRecord, record: KeyRecord) -> None:
        check_manages(caller, record.team)
        if _ROLE_RANK[record.role] > _ROLE_RANK[caller.role]:
            raise PermissionDenied(
                f"a {caller.role.value} key cannot issue {record.role.value} keys", reason="ROLE_TOO_HIGH"
            )
        if record.models is not None:
            unknown = sorted(record.models - self._models)
            if unknown:
                raise InvalidRequest(f"unknown models or routes: {', '.join(unknown)}", reason="UNKNOWN_MODEL")

    # --- teams and budgets ------------------------------------------------------------------------------------------

    async def create_team(self, caller: KeyRecord, team: Team) -> Team:
        check_admin(caller)
        if not team.name:
            raise InvalidRequest("a team needs a name")
        if team.name in self._tenancy.teams:
            raise FailedPrecondition(f"team {team.name!r} already exists", reason="TEAM_EXISTS")
        now = self._clock()
        created = dataclasses.replace(
            team,
            retention_days=team.retention_days or self._tenancy.default_retention_days,
            created_at=now,
            updated_at=now,
        )
        await self._tenancy.store.save_team(created)
        await self._tenancy.put_team(created)
        return created

    def list_teams(self, caller: KeyRecord) -> list[Team]:
        if caller.role is Role.ADMIN:
            return sorted(self._tenancy.teams.values(), key=lambda t: t.name)
        check_manages(caller, caller.team)
        team = self._tenancy.teams.get(caller.team)
        return [team] if team is not None else []

    async def set_budget(self, caller: KeyRecord, budget: Budget) -> Budget:
        if budget.scope is BudgetScope.TEAM:
            if budget.subject not in self._tenancy.teams:
                raise NotFound(f"no team {budget.subject!r}", reason="UNKNOWN_TEAM")
            check_manages(caller, budget.subject)
        else:
            await self.get_key(caller, budget.subject)
        return await self._save_budget(budget)

    async def _save_budget(self, budget: Budget) -> Budget:
        if budget.soft_usd is not None and not budget.downgrade_to:
            raise InvalidRequest("a soft cap needs downgrade_to: the cheaper model calls go to past it")
        if budget.downgrade_to and budget.downgrade_to not in self._models:
            raise InvalidRequest(f"downgrade_to {budget.downgrade_to!r} is not a configured model or route")
        for cap in (budget.hard_usd, budget.soft_usd):
            if cap is not None and cap < 0:
                raise InvalidRequest("budget caps must be 0 or more US dollars")
        saved = dataclasses.replace(budget, updated_at=self._clock())
        await self._tenancy.store.save_budget(saved)
        await self._tenancy.put_budget(saved)
        return saved

    def budgets_of(self, scope: BudgetScope, subject: str) -> list[tuple[Budget, float]]:
        """The budgets of a key or team with their current spend."""
        book = self._tenancy.budgets
        return [(b, book.spent(scope, subject, b.period)) for b in book.budgets_of(scope, subject)]

    # --- usage and audit --------------------------------------------------------------------------------------------

    async def usage(
        self, caller: KeyRecord, group_by: GroupBy, where: UsageFilter, period: Period
    ) -> tuple[list[UsageRow], Forecast]:
        where = await self._scoped_usage(caller, where)
        rows = await self._ledger.usage(group_by, where)
        now = self._clock()
        start, end = period_bounds(period, now)
        scope = dataclasses.replace(where, since=start, until=now + 1)
        spent = await self._ledger.spend(scope)
        window = _FORECAST_WINDOW_S[period]
        recent = await self._ledger.spend(dataclasses.replace(where, since=now - window, until=now + 1))
        forecast = spent + recent / window * max(end - now, 0.0)
        return rows, Forecast(period, start, end, spent, forecast)

    async def _scoped_usage(self, caller: KeyRecord, where: UsageFilter) -> UsageFilter:
        if caller.role is Role.ADMIN:
            return where
        if where.key_id is not None:
            await self.get_key(caller, where.key_id)
        check_manages(caller, where.team or caller.team)
        return dataclasses.replace(where, team=caller.team)

    async def query_audit(self, caller: KeyRecord, where: AuditFilter) -> list[AuditRecord]:
        return await self._ledger.query_audit(self._scoped_audit(caller, where))

    def export_audit(self, caller: KeyRecord, where: AuditFilter) -> AsyncIterator[AuditRecord]:
        return self._ledger.export_audit(self._scoped_audit(caller, where))

    def _scoped_audit(self, caller: KeyRecord, where: AuditFilter) -> AuditFilter:
        if caller.role is Role.ADMIN:
            return where
        check_manages(caller, where.team or caller.team)
        return dataclasses.replace(where, team=caller.team)

    # --- cache ------------------------------------------------------------------------------------------------------

    async def purge_cache(self, caller: KeyRecord, where: PurgeFilter) -> int:
        """Admins purge anything; a team admin its own team's entries only (a shared route's belong to no team)."""
        if where.team is None:
            check_admin(caller)
        else:
            check_manages(caller, where.team)
        try:
            return await self._cache.purge(where)
        except BackendUnavailable:
            # The details (Redis' address among them) are in the gateway's log, not in an answer to a team admin.
            raise Unavailable("the cache backend cannot be reached; try again shortly", retry_after=5.0) from None

    async def cache_stats(self, caller: KeyRecord, team: str | None) -> CacheStats:
        if team is None:
            check_admin(caller)
        else:
            check_manages(caller, team)
        try:
            return await self._cache.stats(team)
        except BackendUnavailable:
            # The details (Redis' address among them) are in the gateway's log, not in an answer to a team admin.
            raise Unavailable("the cache backend cannot be reached; try again shortly", retry_after=5.0) from None

    async def purge_audit(self, caller: KeyRecord, before: float | None, team: str | None, by_retention: bool) -> int:
        check_admin(caller)
        if by_retention:
            return await self._retention.purge()
        if before is None:
            raise InvalidRequest("set `before` or `by_retention`")
        return await self._ledger.purge_audit(before, team=team)
