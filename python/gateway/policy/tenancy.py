"""The live view of keys, teams and budgets that every call reads: loaded at start, changed by the Admin API, and
kept in step with changes other workers make through the shared database.

Calls never wait on the database: they read these dicts. A change made here applies at once on this worker and is
announced to the others (state/notices.py), which read the database on the notice; the periodic sync (every
`sync_interval_s`) catches whatever a lost notice missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.schema import GatewayConfig, KeyConfig
from gateway.ledger.budgets import BudgetBook
from gateway.ledger.periods import period_bounds
from gateway.policy.keyring import KeyRing
from gateway.policy.keys import hash_key, new_key
from gateway.records.audit import UsageFilter
from gateway.records.governance import Budget, BudgetScope, KeyLimits, KeyRecord, Period, Role, Team
from gateway.store.governance import GovernanceStore
from gateway.store.ledger import LedgerStore

if TYPE_CHECKING:  # a type only: state builds on policy (key limits, the key ring), not the other way
    from gateway.state.notices import Notices

log = logging.getLogger("gateway.tenancy")

TENANCY_NOTICE = "tenancy"
BOOTSTRAP_KEY_ENV = "GATEWAY_BOOTSTRAP_KEY"
BOOTSTRAP_HASH_FILE = "bootstrap_key.sha256"
BOOTSTRAP_KEY_ID = "bootstrap"
# Rows written by another worker whose clock runs a little behind ours, or whose transaction committed late, must
# not slip between two syncs: each sync reads back this far behind the last one.
_SYNC_OVERLAP_S = 5.0


class Tenancy:
    def __init__(
        self,
        store: GovernanceStore,
        ledger: LedgerStore,
        ring: KeyRing,
        budgets: BudgetBook,
        *,
        sync_interval_s: float,
        default_retention_days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._ledger = ledger
        self.ring = ring
        self.budgets = budgets
        self.teams: dict[str, Team] = {}
        self.config_key_ids: frozenset[str] = frozenset()
        self.default_retention_days = default_retention_days
        self._sync_interval_s = sync_interval_s
        self._clock = clock
        self._synced_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._notices: Notices | None = None
        self._syncing = asyncio.Lock()
        self._again = False

    async def load(self, config: GatewayConfig, state_dir: Path, *, save_config: bool = True) -> None:
        """`save_config`: write the config's teams and budgets to the database (under --workers the supervisor has
        done it once, before the workers start)."""
        now = self._clock()
        config_keys = [record for record in (_config_key(k, now) for k in config.keys) if record is not None]
        for record in config_keys:
            self.ring.put(record)
        self.config_key_ids = frozenset(k.name for k in config.keys)
        bootstrap = os.environ.get(BOOTSTRAP_KEY_ENV)
        if bootstrap or not config_keys:
            digest = hash_key(bootstrap) if bootstrap else _generated_bootstrap_hash(state_dir)
            self.ring.put(KeyRecord(id=BOOTSTRAP_KEY_ID, prefix="", secret_hash=digest, team="", role=Role.ADMIN))
            self.config_key_ids |= {BOOTSTRAP_KEY_ID}
        if save_config:
            await save_config_teams(self.store, config, now)
        await self._apply_changes(since=None)
        log.info("%d keys, %d teams, %d budgets loaded", len(self.ring), len(self.teams), len(self.budgets.budgets()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._sync_forever(), name="tenancy-sync")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- changes made on this worker (the Admin API) ----------------------------------------------------------------

    def announce_with(self, notices: Notices) -> None:
        """Changes made here are announced through `notices`; `on_notice` applies the others'."""
        self._notices = notices

    async def put_key(self, record: KeyRecord) -> None:
        self.ring.put(record)
        await self._announce()

    async def put_team(self, team: Team) -> None:
        self.teams[team.name] = team
        await self._announce()

    async def put_budget(self, budget: Budget) -> None:
        if self.budgets.set_budget(budget):
            await self._load_spend(budget.scope, budget.subject)
        await self._announce()

    async def _announce(self) -> None:
        if self._notices is not None:
            await self._notices.send({"kind": TENANCY_NOTICE})

    async def on_notice(self) -> None:
        """Another process changed something: read it now. Notices that arrive during a read make one more."""
        if self._syncing.locked():
            self._again = True
            return
        async with self._syncing:
            while True:
                self._again = False
                try:
                    await self.sync()
                except Exception:
                    log.exception("reading changes after a notice failed; the periodic sync will retry")
                if not self._again:
                    return

    async def _load_spend(self, scope: BudgetScope, subject: str) -> None:
        """A newly governed key or team starts from what the ledger holds for it in the current periods."""
        for period in Period:
            self.budgets.load_spend(scope, subject, period, await self.period_spend(scope, subject, period))

    async def period_spend(self, scope: BudgetScope, subject: str, period: Period) -> float:
        """What the ledger holds for a key or team in the current `period`."""
        now = self._clock()
        start, _ = period_bounds(period, now)
        return await self._ledger.spend(
            UsageFilter(
                start,
                now + 1,
                team=subject if scope is BudgetScope.TEAM else None,
                key_id=subject if scope is BudgetScope.KEY else None,
            )
        )

    # --- changes made by other workers ------------------------------------------------------------------------------

    async def sync(self) -> None:
        await self._apply_changes(since=self._synced_at - _SYNC_OVERLAP_S)

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sync_interval_s)
            try:
                await self.sync()
            except Exception:
                log.exception("syncing keys, teams and budgets from the database failed; retrying")

    async def _apply_changes(self, since: float | None) -> None:
        started = self._clock()
        for record in await self.store.list_keys(updated_since=since):
            if record.id not in self.config_key_ids:
                self.ring.put(record)
        for team in await self.store.list_teams(updated_since=since):
            self.teams[team.name] = team
        for budget in await self.store.list_budgets(updated_since=since):
            if self.budgets.set_budget(budget):
                await self._load_spend(budget.scope, budget.subject)
        self._synced_at = started


async def save_config_teams(store: GovernanceStore, config: GatewayConfig, now: float) -> None:
    """The config's teams and their budgets, written over what the database holds for them."""
    for team in config.teams:
        await store.save_team(
            Team(
                name=team.name,
                bodies=team.bodies,
                retention_days=team.retention_days or config.audit.retention_days,
                labels=team.labels,
                created_at=now,
                updated_at=now,
            )
        )
        for budget in team.budgets:
            await store.save_budget(
                Budget(
                    BudgetScope.TEAM,
                    team.name,
                    budget.period,
                    budget.hard_usd,
                    budget.soft_usd,
                    budget.downgrade_to,
                    updated_at=now,
                )
            )


def prepare_bootstrap_key(config: GatewayConfig, state_dir: Path) -> None:
    """Generates the bootstrap key now if the gateway will need one (no GATEWAY_BOOTSTRAP_KEY and no usable config
    key), so that workers started next all read the one hash instead of racing to make their own."""
    usable = any(k.key_sha256 or (k.key_env and os.environ.get(k.key_env)) for k in config.keys)
    if not os.environ.get(BOOTSTRAP_KEY_ENV) and not usable:
        _generated_bootstrap_hash(state_dir)


def _config_key(key: KeyConfig, now: float) -> KeyRecord | None:
    digest = key.key_sha256
    if key.key_env is not None:
        value = os.environ.get(key.key_env)
        if not value:
            log.warning("key %r: environment variable %s is not set; the key is disabled", key.name, key.key_env)
            return None
        digest = hash_key(value)
    assert digest is not None
    return KeyRecord(
        id=key.name,
        prefix="",
        secret_hash=digest,
        team=key.team,
        role=key.role,
        name=key.name,
        models=key.models,
        limits=KeyLimits(key.rpm, key.tpm, key.max_concurrent),
        labels=key.labels,
        created_at=now,
    )


def _generated_bootstrap_hash(state_dir: Path) -> str:
    """On first start, makes an admin key, stores only its hash in the state folder and prints the key once.

    The hash file appears whole or not at all (written beside, then linked into place, which fails if another
    process got there first): two gateways starting at once on one state folder agree on one key."""
    path = state_dir / BOOTSTRAP_HASH_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    partial = state_dir / f".{BOOTSTRAP_HASH_FILE}.{os.getpid()}"
    partial.write_text(hash_key(key) + "\n", encoding="utf-8")
    partial.chmod(0o600)
    try:
        os.link(partial, path)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    finally:
        partial.unlink()
    # Printed, not logged: the one time the key is shown, on the operator's terminal rather than in log files.
    print(
        f"Generated an admin gateway key (shown only this once; its hash is in {path}):\n\n    {key}\n\n"
        f"Clients send it as 'authorization: Bearer <key>'; for the CLI: export GATEWAY_API_KEY=<key> "
        f"GATEWAY_ADMIN_KEY=<key>",
        flush=True,
    )
    return hash_key(key)
