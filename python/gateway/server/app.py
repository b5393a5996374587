"""The server's lifecycle: build it from the config, serve, and shut down gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from llmgateway.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    batches_pb2,
    batches_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
)
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin.compliance import ComplianceOperations
from gateway.admin.operations import AdminOperations
from gateway.batches.build import Batches, build_batches
from gateway.cache.build import build_cache
from gateway.cache.service import ResponseCache
from gateway.chat import ChatRequest
from gateway.config.learning import QueryFeature
from gateway.config.schema import GatewayConfig, ServerConfig, TlsConfig
from gateway.deferral.holder import Holder
from gateway.insights.evaluation import PolicyEvaluator
from gateway.insights.feedback import FeedbackOperations
from gateway.insights.operations import InsightsOperations
from gateway.insights.shadow import ShadowTraffic
from gateway.learning.profiles import ProfileBook, ProfileStore
from gateway.ledger.audit import AuditLog, AuditSettings
from gateway.ledger.budgets import BudgetBook
from gateway.ledger.retention import Retention
from gateway.observe.drift import DriftFlag, DriftMonitor, history_windows
from gateway.observe.drift_share import SharedDrift
from gateway.observe.live import LiveShare, LiveSources
from gateway.observe.metrics import GatewayMetrics
from gateway.observe.metrics_server import (
    DEFAULT_ADDRESS,
    ENV_ADDRESS,
    MetricsServer,
    parse_address,
    start_metrics_server,
)
from gateway.observe.spans import CallTracer
from gateway.observe.tracing import setup_tracing, shutdown_tracing
from gateway.pipeline import Pipeline
from gateway.pipeline.stages.observe import CACHE_PROVIDER_LABEL
from gateway.policy.keyring import FailurePolicy, KeyRing
from gateway.policy.team_policies import TeamPolicies
from gateway.policy.tenancy import TENANCY_NOTICE, Tenancy, prepare_bootstrap_key, save_config_teams
from gateway.records.audit import AuditRecord
from gateway.routing.catalog import ModelCatalog
from gateway.routing.health import HealthBoard
from gateway.routing.quotas import Quotas, SharedQuotas
from gateway.server.admin_servicer import AdminServicer
from gateway.server.batches_servicer import BatchesServicer
from gateway.server.deferred import DeferredCalls
from gateway.server.insights_servicer import InsightsServicer
from gateway.server.openai_http import resolve_http_address
from gateway.server.openai_http.app import HttpServer, OpenAIHandlers, start_http_server
from gateway.server.registration import generic_registrar
from gateway.server.servicer import GatewayServicer, chat_request, chat_response
from gateway.state.admission import LocalLimits, SharedLimits
from gateway.state.failures import AUTH_BLOCK_NOTICE, SharedFailures
from gateway.state.key_limits import KeyLimiter
from gateway.state.notices import LocalNotices, Notice, Notices, PostgresNotices, RedisNotices
from gateway.store.analytics import AnalyticsStore
from gateway.store.database import default_url, open_engine, postgres_dsn
from gateway.store.deferred import DeferredStore
from gateway.store.feedback import FeedbackStore, SqlClusterStore, SqlProfileStore
from gateway.store.governance import GovernanceStore
from gateway.store.ledger import LedgerStore
from gateway.store.live import SqlLiveStore
from gateway.store.shadow import ShadowStore
from gateway.tokens import TokenCounter

if TYPE_CHECKING:
    from gateway.learning.clusters import ClusterBook
    from gateway.observe.tracing import Sink
    from gateway.state.redis import RedisState

log = logging.getLogger("gateway.server")
NOTICES_READY_S = 5.0
"""How long a starting process waits to hear the others' notices before it serves anyway."""

DRIFT_FOLDER = "drift"
"""Under the state folder: each worker's drift windows, for model health across workers (observe/drift_share.py)."""


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """This process's place under `gateway serve --workers N` (server/supervisor.py); None for a lone process."""

    index: int
    count: int
    record_metrics: bool
    """The supervisor serves /metrics: record into prometheus_client's multiprocess files, serve no endpoint here."""
    ready_fd: int | None = None
    """A pipe to the supervisor, written once the server listens and then closed."""

    @property
    def runs_machine_jobs(self) -> bool:
        """Worker 0 runs what a machine needs once (the audit retention purge); a restarted worker 0 takes it on."""
        return self.index == 0


_UNBOUNDED = 2**31 - 1
"""The largest value a gRPC integer option takes (as seconds, 68 years)."""


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    return [
        # Chats with images or long histories are large; the limit is the config's, symmetric in both directions.
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # Bounds the streams one client connection may hold open, so one client cannot starve the others; a client
        # queues the streams past it until one of its streams ends.
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
        # ... and then finds a free slot: with gRPC's "overload protection" (on by default) the core counts a stream
        # until the event loop has released the finished call, which comes later than its last frame, so it refused
        # the client's next stream (REFUSED_STREAM, UNAVAILABLE to the client, never seen by the gateway): 2,846 of
        # 5,000 streams over one connection per client process, 74 of 100 over one connection at a limit of 8. The
        # calls the gateway serves are bounded by server.max_in_flight, so the HTTP/2 count is the one to keep.
        ("grpc.http.overload_protection", 0),
        # Long streams sit idle between chunks behind load balancers: ping to keep the connection, and accept
        # clients' pings every 10 s without calling them abusive.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # One process per core is the scaling unit; SO_REUSEPORT lets several share the address.
        ("grpc.so_reuseport", 1),
        # grpc.aio takes calls from the core one at a time per method, on the event loop. While the loop is busy (a
        # burst of streams opening), the calls it has not taken yet wait in the core's backlog; past
        # max_pending_requests (default 1,000) the core drops them at random, and all of them past the hard limit
        # (default 3,000). Each ends as a bare CANCELLED the gateway never sees: no status detail, no audit record,
        # no log line (benches/stream_burst.py: 62 of 2,000 and 2,207 of 5,000 streams; the bare forwarder lost as
        # many). The backlog is the wrong place to refuse, so its bounds are set out of reach: the gateway's own
        # bound (server.max_in_flight) refuses the excess once taken, with a status and a record, and a refusal is
        # cheap, so the backlog drains fast. For the same reason a call waits in the backlog as long as it takes,
        # not grpc.server_max_unrequested_time_in_server's default 30 s, after which the core drops it the same
        # way: a CPU-starved machine (load 10 on 2 cores) took longer than that to take 5,000 streams and 314 of
        # them were dropped. A caller's deadline still ends the wait, with DEADLINE_EXCEEDED.
        ("grpc.server.max_pending_requests", _UNBOUNDED),
        ("grpc.server.max_pending_requests_hard_limit", _UNBOUNDED),
        ("grpc.server_max_unrequested_time_in_server", _UNBOUNDED),
    ]


def _server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Read once at start; with client_ca_file set, clients must present a certificate it signed (mutual TLS)."""
    return grpc.ssl_server_credentials(
        [(Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())],
        root_certificates=Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None,
        require_client_auth=tls.client_ca_file is not None,
    )


@dataclass
class Gateway:
    """A built gateway: its background jobs run, its server is not started yet."""

    server: grpc.aio.Server
    servicer: GatewayServicer
    """The Gateway service itself, callable without the transport (benches/pipeline_cpu.py)."""
    catalog: ModelCatalog
    health: health.aio.HealthServicer
    address: str
    port: int
    tenancy: Tenancy
    audit: AuditLog
    retention: Retention
    engine: AsyncEngine
    ledger: LedgerStore
    metrics: GatewayMetrics
    metrics_server: MetricsServer | None
    tracing: Sink | None
    cache: ResponseCache
    notices: Notices
    board: HealthBoard
    """The targets' breakers and rests, as this process sees them."""
    limits: LocalLimits | SharedLimits
    shared_drift: SharedDrift | None = None
    http: HttpServer | None = None
    """The OpenAI-compatible HTTP front door, when an address is set."""
    feedback: FeedbackOperations | None = None
    shadow: ShadowTraffic | None = None
    deferred: DeferredCalls | None = None
    live: LiveShare | None = None
    """This process's live figures, shared with the others (observe/live.py)."""
    batches: Batches | None = None
    """The Batches service and its poller, unless batches.enabled is off."""
    clusters: ClusterBook | None = None

    async def stop(self, grace: float) -> None:
        """Finishes in-flight calls (both front doors at once), then writes every pending audit record before closing
        the database, and exports the last spans."""
        await self.health.enter_graceful_shutdown()
        if self.http is not None:
            await asyncio.gather(self.server.stop(grace), self.http.close())
        else:
            await self.server.stop(grace)
        if self.deferred is not None:
            await self.deferred.aclose()  # held calls not answered by now stay in the database for the next start
        if self.shadow is not None:
            await self.shadow.drain()  # the copies of calls just answered, with their audit records
        if self.batches is not None:
            await self.batches.poller.close()  # a round cut short resumes at the next start (records/batches.py Step)
        if isinstance(self.limits, SharedLimits):
            await self.limits.drain()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        await self.retention.close()
        if self.live is not None:
            await self.live.close()
        if self.feedback is not None:
            await self.feedback.close()
        if self.clusters is not None:
            await self.clusters.close()
        if self.shared_drift is not None:
            await self.shared_drift.close()
        await self.tenancy.close()
        await self.notices.close()
        await self.audit.close()
        self.ledger.close()
        await self.engine.dispose()
        await self.catalog.aclose()
        await self.cache.close()
        if self.tracing is not None:
            await asyncio.to_thread(shutdown_tracing, self.tracing)


def _log_drift(model: str, provider: str, flag: DriftFlag) -> None:
    log.warning(
        "drift: %s@%s %s %s=%.3g (threshold %.3g) over %d windows: %s",
        model,
        provider,
        flag.metric,
        flag.statistic,
        flag.value,
        flag.threshold,
        flag.windows,
        flag.detail,
    )


def _prompt_tokens(counter: TokenCounter, catalog: ModelCatalog, request: ChatRequest) -> int:
    """The prompt's tokens as the model (or a route's first model) asked for counts them: for max_input_tokens."""
    model = catalog.primary(request.model).model
    return counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens


async def build_gateway(
    config: GatewayConfig,
    *,
    address: str | None = None,
    state_dir: Path,
    metrics_address: str | None = None,
    span_exporter: SpanExporter | None = None,
    drift_clock: Callable[[], float] = time.time,
    worker: WorkerRole | None = None,
    http_address: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Gateway:
    """`http_address`: where the OpenAI-compatible HTTP front door listens (the --http-address flag); else env
    GATEWAY_HTTP_ADDR, the config's server.http_address; unset or empty: no HTTP front door.
    `metrics_address`: where /metrics is served (the --metrics-address flag); else env GATEWAY_METRICS_ADDR, the
    config's observe.metrics.address, 127.0.0.1:9464. An empty address turns metrics off.
    `span_exporter` replaces the exporter the OTEL_* settings name (an embedding process's own, or a test's);
    `drift_clock` is the clock the drift monitor's windows follow; `clock` the one time-of-day prices and held calls
    follow; `worker`: set in the processes of --workers."""
    counter = TokenCounter()  # loads each vocabulary at its first count (see TokenCounter.preload)
    catalog = ModelCatalog.from_config(config, state_dir)
    strict = config.audit.mode == "strict"
    engine = await open_engine(config.state.database_url or default_url(state_dir), synchronous_full=strict)
    ledger = LedgerStore(engine, synchronous_full=strict)
    ring = KeyRing(FailurePolicy(config.auth.failures_per_minute, config.auth.failure_burst))
    budgets = BudgetBook()
    tenancy = Tenancy(
        GovernanceStore(engine),
        ledger,
        ring,
        budgets,
        sync_interval_s=config.state.sync_interval_s,
        default_retention_days=config.audit.retention_days,
    )
    await tenancy.load(config, state_dir, save_config=worker is None)
    audit_enabled = config.audit.enabled

    async def write(records: list[AuditRecord]) -> None:
        await ledger.write(records, with_audit=audit_enabled)

    audit = AuditLog(write, AuditSettings(strict=strict, flush_interval_s=config.audit.flush_interval_ms / 1000))
    retention = Retention(
        ledger,
        lambda: list(tenancy.teams.values()),
        config.audit.retention_days,
        config.audit.purge_interval_s,
    )
    tracing = setup_tracing(
        config.observe.tracing, exporter=span_exporter, worker=worker.index if worker is not None else None
    )
    if worker is not None:
        metrics_address = ""  # the supervisor serves every worker's series
        recording = worker.record_metrics
    else:
        metrics_address = resolve_metrics_address(config, metrics_address)
        recording = bool(metrics_address)
    metrics = GatewayMetrics(
        models=catalog.model_names(),
        providers={t.provider.name for t in catalog.targets()} | {CACHE_PROVIDER_LABEL},
        routes=[r.name for r in catalog.routes()],
    )

    def on_drift(model: str, provider: str, flag: DriftFlag) -> None:
        _log_drift(model, provider, flag)
        metrics.observe_drift_flag(model=model, provider=provider, metric=flag.metric)

    observed = metrics if recording else None
    drift = (
        DriftMonitor(
            config.observe.drift,
            clock=drift_clock,
            on_flag=on_drift,
            keep_windows=history_windows(config.observe.drift) if worker is not None else 0,
        )
        if config.observe.drift.enabled
        else None
    )
    shared_drift = (
        SharedDrift(drift, config.observe.drift, state_dir / DRIFT_FOLDER, clock=drift_clock)
        if drift is not None and worker is not None
        else None
    )
    cache = build_cache(config, observed, state_dir=state_dir)
    shared: RedisState | None = None
    if config.state.redis_url:
        from gateway.state.redis import RedisState

        shared = RedisState(config.state.redis_url, timeout_s=config.limits.redis_timeout_s)
    local_limits = LocalLimits(KeyLimiter(), budgets)
    limits: LocalLimits | SharedLimits = local_limits
    if shared is not None and config.limits.backend != "memory":
        limits = SharedLimits(
            shared,
            local_limits,
            tenancy.period_spend,
            mode=config.limits.mode,
            lease_size=config.limits.lease_size,
            fail_open=config.limits.on_redis_error == "fail_open",
            metrics=observed,
        )
    board = HealthBoard(config.circuit_breaker)
    notices = _notices(config, shared, state_dir)

    announcing: set[asyncio.Task[None]] = set()

    def announce(event: str, key: str, seconds: float) -> None:
        notice = {"kind": "health", "event": event, "target": key, "s": seconds}
        task = asyncio.get_running_loop().create_task(notices.send(notice))
        announcing.add(task)  # referenced until sent
        task.add_done_callback(announcing.discard)

    board.announce_with(announce)
    tenancy.announce_with(notices)
    failures = SharedFailures(shared, notices, ring) if shared is not None else None
    if failures is not None:
        ring.report_failures_to(failures.report)
    half_lives = {r.name: r.learned.half_life_s for r in config.routes if r.learned is not None}
    memories = {r.name: r.learned.memory_half_life_s for r in config.routes if r.learned is not None}
    profile_store: ProfileStore = SqlProfileStore(engine)
    if shared is not None:
        from gateway.state.profiles import RedisProfileStore

        profile_store = RedisProfileStore(shared)
    profiles = ProfileBook(half_lives, profile_store, memories)
    model_configs = {name: catalog.pool(name)[0].model for name in catalog.model_names()}
    learned = evaluating = None
    clusters: ClusterBook | None = None
    if half_lives:
        # numpy, which the bandit draws with, is imported only for a config with a learned route.
        import numpy as np

        from gateway.learning.clusters import ClusterBook, ClusterStore
        from gateway.routing.learned import LearnedStrategy

        cluster_store: ClusterStore = SqlClusterStore(engine)
        if shared is not None:
            from gateway.state.clusters import RedisClusterStore

            cluster_store = RedisClusterStore(shared)
        clusters = ClusterBook(
            {
                r.name: (r.learned.clusters.k, r.learned.clusters.seed)
                for r in config.routes
                if r.learned is not None and QueryFeature.CLUSTER in r.learned.features
            },
            cluster_store,
        )
        try:
            await clusters.sync()  # the stored centers before the first call, so a restart keeps the clusters' ids
        except Exception:  # the clusters come at the next sync; until then calls are typed by the cheap features
            log.warning("query-type clusters not read at start; retrying in the background", exc_info=True)
        learned = LearnedStrategy(profiles, model_configs, time.time, clusters=clusters)
        # Offline evaluation's own, seeded: it runs in a thread, apart from the router's generator, and repeats
        # itself for the same profiles.
        evaluating = LearnedStrategy(profiles, model_configs, time.time, np.random.default_rng(0))
    shadow = ShadowTraffic(config.routes, ShadowStore(engine))
    policies = TeamPolicies(config, partial(_prompt_tokens, counter, catalog))
    tracer = CallTracer(tracing, record_content=config.observe.tracing.record_content)
    pipeline = Pipeline(
        ring,
        catalog,
        counter,
        board,
        teams=tenancy.teams,
        budgets=budgets,
        audit=audit,
        policies=policies,
        audit_enabled=audit_enabled,
        tracer=tracer,
        metrics=observed,
        drift=drift,
        cache=cache,
        limits=limits,
        quotas=SharedQuotas(shared) if shared is not None and config.limits.backend != "memory" else Quotas(),
        max_in_flight=config.server.max_in_flight,
        learned=learned,
        shadow=shadow if shadow.configured else None,
        clock=clock,
        holder=Holder(config.deferral, counter, clock),
    )
    shadow.bind(pipeline)
    known_models = frozenset(catalog.model_names()) | {r.name for r in catalog.routes()}
    admin = AdminOperations(tenancy, ledger, retention, known_models, cache)

    server = grpc.aio.server(options=server_options(config.server))
    registrar = generic_registrar(server)
    max_input_chars = config.server.max_input_chars
    deferred = DeferredCalls(
        pipeline,
        ring,
        DeferredStore(engine),
        config.deferral,
        clock,
        parse=partial(chat_request, max_input_chars=max_input_chars),
        respond=chat_response,
    )
    servicer = GatewayServicer(pipeline, ring, max_input_chars, deferred)
    gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, registrar)
    live = LiveShare(
        LiveSources(audit.writer, board, lambda: pipeline.in_flight, pipeline.queue_depths, drift, retention),
        SqlLiveStore(engine),
    )
    compliance = ComplianceOperations(admin, ledger, config, live.last_purge_at)
    admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(admin, compliance, ring), registrar)
    insights = InsightsOperations(
        pipeline,
        ledger,
        drift,
        config.models,
        shadow,
        AnalyticsStore(engine),
        config.feedback,
        shared_drift=shared_drift,
    )
    feedback_store = FeedbackStore(engine)
    feedback = FeedbackOperations(
        config.feedback,
        config.routes,
        ledger,
        feedback_store,
        audit,
        profiles,
        audit_enabled=audit_enabled,
    )
    evaluator = PolicyEvaluator(
        config.routes, config.feedback, feedback_store, audit, evaluating, audit_enabled=audit_enabled
    )
    insights_pb2_grpc.add_InsightsServicer_to_server(
        InsightsServicer(insights, feedback, evaluator, ring, config.server.max_input_chars), registrar
    )
    batches = (
        build_batches(
            config, engine, catalog, policies, counter, audit, limits, ring, tenancy.teams, pipeline, observed, tracer
        )
        if config.batches.enabled
        else None
    )
    if batches is not None:
        batches_pb2_grpc.add_BatchesServicer_to_server(
            BatchesServicer(batches.service, ring, config.batches.max_items), registrar
        )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registrar)
    service_names = (
        gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name,
        admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
        insights_pb2.DESCRIPTOR.services_by_name["Insights"].full_name,
        *([batches_pb2.DESCRIPTOR.services_by_name["Batches"].full_name] if batches is not None else []),
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(service_names, registrar)

    address = address or config.server.address
    tls = config.server.tls
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, _server_credentials(tls))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    for name in service_names[:-2]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    metrics_server = await start_metrics_server(metrics.registry, metrics_address) if metrics_address else None
    http_address = resolve_http_address(config, http_address)
    http: HttpServer | None = None
    if http_address:
        host, http_port = parse_address(http_address, "HTTP address")
        http = await start_http_server(
            OpenAIHandlers(pipeline, ring, config.server.max_input_chars, feedback),
            host,
            http_port,
            max_body_bytes=config.server.max_message_bytes,
            grace_s=config.server.shutdown_grace_s,
            tls=tls,
            console=_console(config, state_dir, ring, admin, insights, compliance, pipeline, live)
            if config.console.enabled
            else None,
            batches=batches.service if batches is not None else None,
        )
    audit.start()
    live.start()
    cache.start()  # in every worker: each keeps its own semantic index, fed the entries the others store
    tenancy.start()
    await deferred.start()
    if worker is None or worker.runs_machine_jobs:
        retention.start()
        log.info("audit retention: purging every %g s from this process", config.audit.purge_interval_s)
    if shared_drift is not None:
        shared_drift.start()
    if half_lives:
        feedback.start()
        if clusters is not None:
            clusters.start()
    if batches is not None:
        batches.poller.start()

    async def on_notice(notice: Notice) -> None:
        if notice.get("kind") == TENANCY_NOTICE:
            await tenancy.on_notice()
        elif notice.get("kind") == "health":
            board.apply(str(notice.get("event")), str(notice.get("target")), float(notice.get("s") or 0.0))
        elif notice.get("kind") == AUTH_BLOCK_NOTICE and failures is not None:
            failures.apply(notice)

    notices.start(on_notice)
    if not await notices.ready(NOTICES_READY_S):
        log.warning(
            "change notices from other processes are not arriving yet; until they do, changes reach this one at its "
            "periodic sync (state.sync_interval_s)"
        )
    return Gateway(
        server,
        servicer,
        catalog,
        health_servicer,
        address,
        port,
        tenancy,
        audit,
        retention,
        engine,
        ledger,
        metrics,
        metrics_server,
        tracing,
        cache,
        notices,
        board,
        limits,
        shared_drift,
        http,
        feedback,
        shadow,
        deferred,
        live,
        batches,
        clusters,
    )


def _console(
    config: GatewayConfig,
    state_dir: Path,
    ring: KeyRing,
    admin: AdminOperations,
    insights: InsightsOperations,
    compliance: ComplianceOperations,
    pipeline: Pipeline,
    live: LiveShare,
) -> web.Application:
    """The operators' console, on the same operations as the Admin and Insights services. Imported here: a gateway
    without the HTTP front door never loads Jinja2."""
    from gateway.console.app import console_app
    from gateway.console.pages import Pages
    from gateway.console.sessions import SessionSigner, load_secret

    signer = SessionSigner(load_secret(config.console.secret_env, state_dir), config.console.session_idle_s)
    pages = Pages(
        ring,
        signer,
        admin,
        insights,
        compliance,
        live,
        pipeline.flush_audit,
        config.observe.trace_url_template,
    )
    return console_app(pages, ring, signer)


def resolve_metrics_address(config: GatewayConfig, flag: str | None) -> str:
    """--metrics-address, else env GATEWAY_METRICS_ADDR, else observe.metrics.address, else 127.0.0.1:9464; "" is
    off."""
    if flag is not None:
        return flag
    configured = os.environ.get(ENV_ADDRESS, config.observe.metrics.address)
    return DEFAULT_ADDRESS if configured is None else configured


def counted_models(config: GatewayConfig) -> Iterator[tuple[str, str | None]]:
    """(upstream model, declared tokenizer) of every model and deployment: what the token counter must load."""
    for model in config.models:
        yield model.upstream, model.tokenizer
        for deployment in model.deployments:
            yield deployment.upstream_model or model.upstream, model.tokenizer


async def prepare_state(config: GatewayConfig, state_dir: Path) -> None:
    """What runs once per machine before --workers start, so that workers do not race for it: the bootstrap key
    (generated and printed once), the database schema (created or upgraded) and the config's teams and budgets."""
    prepare_bootstrap_key(config, state_dir)
    strict = config.audit.mode == "strict"
    engine = await open_engine(config.state.database_url or default_url(state_dir), synchronous_full=strict)
    try:
        await save_config_teams(GovernanceStore(engine), config, time.time())
    finally:
        await engine.dispose()


def _notices(config: GatewayConfig, shared: RedisState | None, state_dir: Path) -> Notices:
    """How this process hears of changes the others make: Redis when the state is shared there, else the shared
    PostgreSQL database, else the other processes on this machine (SQLite)."""
    if shared is not None:
        return RedisNotices(shared)
    url = config.state.database_url or ""
    if url.startswith("postgresql"):
        return PostgresNotices(postgres_dsn(url))
    return LocalNotices(state_dir / "notices")


FULL_COLLECTION_EVERY = 1000
"""Young (gen-1) collections between two looks at a full one; Python's default is 10."""


def settle_heap() -> None:
    """Moves everything built at start (modules, the config, models, tokenizers: most of the heap) into the garbage
    collector's permanent generation, so its collections walk only what calls allocate (gc.freeze).

    Then makes full collections rare. One walks every object of every call in flight (235 ms with 2,000 streams
    open, 314,000 objects) and finds next to nothing: calls free their objects by reference counting (5 to 48 objects
    per full collection in benches/stream_burst.py). Python looks at one every 10 gen-1 collections and runs it when
    the long-lived objects grew by a quarter since the last, which a burst of streams opening does again and again:
    at 5,000 streams, 10 full collections, 3.3 s in all, up to 0.96 s each, every call stalled meanwhile. Looking
    every 1,000 instead keeps them out of bursts; young collections, which stay short, are unchanged."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


async def serve(
    config: GatewayConfig,
    *,
    address: str | None,
    state_dir: Path,
    metrics_address: str | None = None,
    worker: WorkerRole | None = None,
    http_address: str | None = None,
) -> None:
    gateway = await build_gateway(
        config,
        address=address,
        state_dir=state_dir,
        metrics_address=metrics_address,
        worker=worker,
        http_address=http_address,
    )
    settle_heap()
    await gateway.server.start()
    if worker is not None and worker.ready_fd is not None:
        os.write(worker.ready_fd, b"r")
        os.close(worker.ready_fd)
    host = gateway.address.rsplit(":", 1)[0]
    log.info(
        "gateway listening on %s:%d (%s) with %d models; metrics at %s",
        host,
        gateway.port,
        "TLS" if config.server.tls else "plaintext",
        len(gateway.catalog.targets()),
        gateway.metrics_server.url
        if gateway.metrics_server is not None
        else ("the supervisor's" if worker is not None else "(off)"),
    )
    if gateway.http is not None:
        shown = f"[{gateway.http.host}]" if ":" in gateway.http.host else gateway.http.host
        log.info("OpenAI-compatible HTTP front door at http://%s:%d/v1", shown, gateway.http.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: finishing in-flight calls for up to %.0f s", config.server.shutdown_grace_s)
    await gateway.stop(config.server.shutdown_grace_s)
    log.info("stopped")
