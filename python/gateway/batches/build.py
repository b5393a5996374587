"""The Batches service put together from the gateway's parts (server/app.py builds it once per process)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.batches.admission import BatchAdmission
from gateway.batches.billing import BatchBilling
from gateway.batches.poller import BatchPoller
from gateway.batches.service import BatchService
from gateway.config.schema import GatewayConfig
from gateway.ledger.audit import AuditLog
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.spans import CallTracer
from gateway.pipeline import Pipeline
from gateway.policy.keyring import KeyRing
from gateway.policy.team_policies import TeamPolicies
from gateway.records.governance import Team
from gateway.routing.catalog import ModelCatalog
from gateway.state.admission import LocalLimits, SharedLimits
from gateway.store.batches import BatchStore
from gateway.tokens import TokenCounter


@dataclass(frozen=True, slots=True)
class Batches:
    service: BatchService
    poller: BatchPoller


def build_batches(
    config: GatewayConfig,
    engine: AsyncEngine,
    catalog: ModelCatalog,
    policies: TeamPolicies,
    counter: TokenCounter,
    audit: AuditLog,
    limits: LocalLimits | SharedLimits,
    ring: KeyRing,
    teams: dict[str, Team],
    pipeline: Pipeline,
    metrics: GatewayMetrics | None,
    tracer: CallTracer,
) -> Batches:
    store = BatchStore(engine)
    billing = BatchBilling(
        store, audit, limits, ring, policies, teams, counter, audit_enabled=config.audit.enabled, metrics=metrics
    )
    admission = BatchAdmission(catalog, policies, counter, config.batches, config.server.max_input_chars)
    poller = BatchPoller(
        store, billing, catalog, admission, config.batches, ring, pipeline, metrics=metrics, tracer=tracer
    )
    service = BatchService(store, admission, billing, wake=poller.wake, metrics=metrics)
    poller.on_progress = service.progressed
    return Batches(service, poller)
