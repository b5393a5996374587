"""The gateway's Prometheus series, one method per pipeline event.

Each `GatewayMetrics` owns its own CollectorRegistry (tests and several gateways in one process do not collide).
Under `--workers` the values go to prometheus_client's multiprocess files instead (PROMETHEUS_MULTIPROC_DIR, set by
the supervisor before any worker imports prometheus_client) and the supervisor serves one /metrics for all workers
(server/supervisor.py); each gauge declares how workers' values combine.
Label values come from bounded sets: gRPC status names, the catalog's models, providers and routes, and the teams;
a value outside its set (or past `max_label_values` distinct ones when no set is given) is counted as `other`, so a
caller's typo or a flood of new names cannot grow the series without bound. Never a request id or free text.

Per-event cost: label children are cached in plain dicts keyed by the label tuple, which skips prometheus_client's
per-call label validation and lock (docs/benchmarks/observe.md). The series every call touches go further: their
children's values are held directly (`_Tally`, `_Buckets`), so a call's end costs one lookup and one lock per value
instead of prometheus_client's checks and bucket loop around each (docs/benchmarks.md, issue 15).

Names: the GenAI conventions where they fit, sanitized for Prometheus (`gen_ai.client.token.usage` ->
`gen_ai_client_token_usage`, seconds get the `_seconds` suffix), with the conventions' label names
(`gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `gen_ai_token_type`, `error_type`);
the gateway's own series under `llm_gateway_` with short labels (model, provider, route, code).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.values import ValueClass

from gateway.errors import ErrorKind

_M = TypeVar("_M", Counter, Histogram, Gauge)
_Labeller = Callable[[tuple[object, ...]], tuple[str, ...]]

OTHER: Final = "other"
"""The label value that stands for every value outside a label's bounded set."""
OPERATION: Final = "chat"
EMBED_OPERATION: Final = "embeddings"
"""gen_ai.operation.name of Embed calls (the GenAI conventions' name)."""
STATUS_CODES: Final = frozenset(("OK", *ErrorKind))
CALL_KINDS: Final = frozenset(("chat", "stream", "compare", "replay", "embed"))
APIS: Final = frozenset(("grpc", "http"))
"""The front doors: gRPC, and the OpenAI-compatible HTTP one."""
ATTEMPT_OUTCOMES: Final = frozenset(("ok", "error", "cancelled"))
CACHE_KINDS: Final = frozenset(("exact", "semantic"))
BATCH_STATUSES: Final = frozenset(
    ("queued", "validating", "in_progress", "finalizing", "cancelling", "completed", "expired", "cancelled", "failed")
)
"""A batch's statuses (gateway.records.batches.Status values)."""
BREAKER_STATES: Final = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
"""Gauge value per circuit-breaker state (gateway.routing.health.BreakerState values)."""

# Buckets the GenAI conventions advise for gen_ai.client.operation.duration and time to first token (seconds).
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
# ... and for gen_ai.client.token.usage (tokens).
TOKEN_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
QUEUE_WAIT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BoundedLabel:
    """Maps a raw value to itself when it is in the allowed set (or, with no set, while fewer than `limit` distinct
    values were seen), else to `other`."""

    __slots__ = ("_allowed", "_limit", "_seen")

    def __init__(self, allowed: Iterable[str] | None = None, *, limit: int = 256) -> None:
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return OTHER

    def allow(self, values: Iterable[str]) -> None:
        """Widens the allowed set (a model or team added at run time)."""
        if self._allowed is not None:
            self._allowed = self._allowed | frozenset(values)
        else:
            self._seen.update(values)


class GatewayMetrics:
    """Every series the gateway exports. Methods are synchronous and cheap: call them inline on the event loop."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        models: Iterable[str] | None = None,
        providers: Iterable[str] | None = None,
        routes: Iterable[str] | None = None,
        teams: Iterable[str] | None = None,
        max_label_values: int = 256,
    ) -> None:
        """`models`, `providers`, `routes`, `teams`: the allowed label values (the catalog's and the tenancy's
        names; "" is always allowed, for a call that never reached a model). None leaves a label open up to
        `max_label_values` distinct values."""
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        limit = max_label_values
        self.model = BoundedLabel(_with_empty(models), limit=limit)
        self.provider = BoundedLabel(_with_empty(providers), limit=limit)
        self.route = BoundedLabel(_with_empty(routes), limit=limit)
        self.team = BoundedLabel(_with_empty(teams), limit=limit)
        self.code = BoundedLabel(STATUS_CODES)
        self.kind = BoundedLabel(CALL_KINDS)
        self.api = BoundedLabel(APIS)
        self.outcome = BoundedLabel(ATTEMPT_OUTCOMES)
        self.cache_kind = BoundedLabel(CACHE_KINDS)
        self.rejection_reason = BoundedLabel(limit=32)
        self.cache_stage = BoundedLabel(("lookup", "store", "embed_timeout", "feed"))
        self.guardrail_type = BoundedLabel(limit=64)
        self.guardrail_action = BoundedLabel(limit=32)

        call = ("kind", "route", "model", "provider", "code", "api")
        self.requests = Counter("llm_gateway_requests", "Calls finished, by outcome.", call, registry=r)
        self.request_duration = Histogram(
            "llm_gateway_request_duration_seconds",
            "Call duration from arrival to the last byte sent.",
            call,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        # Gauges under --workers (prometheus_client's multiprocess mode, one /metrics for every worker): each says how
        # its workers' values combine. Counters and histograms are summed, those of workers that died included.
        self.in_flight = Gauge(
            "llm_gateway_in_flight_requests",
            "Calls being served now (every worker's summed).",
            ("kind",),
            registry=r,
            multiprocess_mode="livesum",
        )
        gen_ai = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per served call (gen_ai.client.token.usage), input and output.",
            (*gen_ai, "gen_ai_token_type", "route"),
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Provider attempt duration (gen_ai.client.operation.duration); error_type is empty on success.",
            (*gen_ai, "error_type"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.time_to_first_chunk = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from a streaming call's arrival to its first chunk sent (gen_ai.server.time_to_first_token).",
            (*gen_ai, "route"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "llm_gateway_cost_usd", "Cost of served calls in US dollars.", ("route", "model", "provider"), registry=r
        )
        self.attempts = Counter(
            "llm_gateway_provider_attempts",
            "Provider attempts by outcome.",
            ("provider", "model", "outcome", "code"),
            registry=r,
        )
        self.retries = Counter(
            "llm_gateway_retries", "Attempts that retried a target already tried.", ("provider", "model"), registry=r
        )
        self.fallbacks = Counter(
            "llm_gateway_fallbacks", "Attempts that failed over to another target of a route.", ("route",), registry=r
        )
        self.cache = Counter("llm_gateway_cache_lookups", "Cache lookups.", ("kind", "result"), registry=r)
        # Batches (the Batches service): rare events, so their children are not cached.
        self.batch_status = BoundedLabel(BATCH_STATUSES)
        self.batches_submitted = Counter(
            "llm_gateway_batches_submitted", "Batches admitted.", ("provider", "model"), registry=r
        )
        self.batches_ended = Counter(
            "llm_gateway_batches_ended", "Batches ended, by their final status.", ("provider", "status"), registry=r
        )
        self.batch_items = Counter(
            "llm_gateway_batch_items",
            "Batch items given an outcome, by gRPC status name (OK: answered).",
            ("provider", "code"),
            registry=r,
        )
        self.batch_cost = Counter(
            "llm_gateway_batch_cost_usd",
            "Cost of answered batch items at the batch prices, in US dollars.",
            ("provider", "model"),
            registry=r,
        )
        self.cache_rejections = Counter(
            "llm_gateway_cache_semantic_rejections",
            "Semantic candidates above the similarity threshold that verify refused, by the difference found.",
            ("reason",),
            registry=r,
        )
        self.cache_saved = Counter(
            "llm_gateway_cache_saved_usd", "What cache hits would have cost from the provider.", ("model",), registry=r
        )
        self.cache_backend_up = Gauge(
            "llm_gateway_cache_backend_up",
            "1 while the cache backend answers, 0 while calls are served without the cache (in any worker).",
            ("backend",),
            registry=r,
            multiprocess_mode="livemin",
        )
        self.cache_errors = Counter(
            "llm_gateway_cache_errors",
            "Cache work that failed without failing its call: lookup, store, embed_timeout, feed.",
            ("stage",),
            registry=r,
        )
        self.cache_backend_errors = Counter(
            "llm_gateway_cache_backend_errors",
            "Cache backend commands that failed or timed out.",
            ("backend",),
            registry=r,
        )
        self.drift_flags = Counter(
            "llm_gateway_drift_flags",
            "Drift flags raised: a model's metric shifted from its baseline (Insights.GetModelHealth has details).",
            ("model", "provider", "metric"),
            registry=r,
        )
        self.guardrail_actions = Counter(
            "llm_gateway_guardrail_actions", "Guardrail actions taken (items acted on).", ("type", "action"), registry=r
        )
        self.breaker_state = Gauge(
            "llm_gateway_circuit_breaker_state",
            "Circuit-breaker state per target: 0 closed, 1 half-open, 2 open (the most open of any worker's).",
            ("provider", "model"),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_depth = Gauge(
            "llm_gateway_queue_depth",
            "Calls waiting in a route's queue (each worker has its own, bounded by max_size: the deepest).",
            ("route",),
            registry=r,
            multiprocess_mode="livemax",
        )
        self.queue_wait = Histogram(
            "llm_gateway_queue_wait_seconds",
            "Time calls waited in a route's queue.",
            ("route",),
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.shared_state_up = Gauge(
            "llm_gateway_shared_state_up",
            "1 while the shared limits and budgets (Redis) answer, 0 while each process keeps its own share (in any "
            "worker).",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.budget_remaining = Gauge(
            "llm_gateway_budget_remaining_usd",
            "Budget left in the current period, per team (the least any worker counts).",
            ("team",),
            registry=r,
            multiprocess_mode="livemin",
        )
        # Label children by raw label tuple: one dict lookup per event instead of labels()' validation and lock.
        self._children: dict[tuple[object, ...], object] = {}
        self._calls: dict[tuple[str, str, str, str, str, str], _CallSeries] = {}
        self._attempt_series: dict[tuple[str, str, str, str, str], tuple[_Tally, _Buckets]] = {}
        self._in_flight: dict[str, _Tally] = {}

    # -- events ---------------------------------------------------------------------------------------------------

    def observe_call_started(self, kind: str) -> None:
        """A call arrived; pair with exactly one `observe_call` (in a finally)."""
        self._in_flight_of(kind).inc(1.0)

    def observe_call(
        self,
        *,
        kind: str,
        route: str,
        model: str,
        provider: str,
        code: str,
        duration_s: float,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        api: str = "grpc",
    ) -> None:
        """A call ended (any outcome): requests, duration, tokens, cost; and one fewer in flight.

        model/provider: what served it ("" when no provider was reached); code: the gRPC status name; api: the front
        door (grpc or http)."""
        key = (kind, route, model, provider, code, api)
        series = self._calls.get(key)
        if series is None:
            series = self._calls[key] = self._call_series(key)
        series.in_flight.inc(-1.0)
        series.requests.inc(1.0)
        series.duration.observe(duration_s)
        if provider:
            # Token and cost series appear with a call that has some, not at 0 before it.
            if input_tokens or output_tokens:
                tokens = series.tokens
                if tokens is None:
                    tokens = series.tokens = self._token_series(key)
                tokens[0].observe(input_tokens)
                tokens[1].observe(output_tokens)
            if cost_usd:
                cost = series.cost
                if cost is None:
                    _, route_label, model_label, provider_label, *_ = self._labels_of(key)
                    cost = series.cost = _Tally(self.cost.labels(route_label, model_label, provider_label))
                cost.inc(cost_usd)

    def observe_first_chunk(self, *, route: str, model: str, provider: str, seconds: float) -> None:
        """A streaming call sent its first chunk `seconds` after it arrived."""
        self._child(self.time_to_first_chunk, ("ttfc", route, model, provider), self._ttfc_labels).observe(seconds)

    def observe_attempt(
        self,
        *,
        route: str,
        model: str,
        provider: str,
        retry: int,
        fallback: bool,
        outcome: str,
        code: str,
        duration_s: float,
    ) -> None:
        """A provider attempt ended. retry: 0 for a target's first try; fallback: the attempt went to a target other
        than the plan's first; outcome: ok, error or cancelled; code: the gRPC status name of a failure, else ""."""
        key = (route, model, provider, outcome, code)
        pair = self._attempt_series.get(key)
        if pair is None:
            m, p = self.model(model), self.provider(provider)
            bounded_code = self.code(code) if code else ""
            pair = self._attempt_series[key] = (
                _Tally(self.attempts.labels(p, m, self.outcome(outcome), bounded_code)),
                _Buckets(self.operation_duration.labels(OPERATION, p, m, bounded_code)),
            )
        attempts, duration = pair
        attempts.inc(1.0)
        duration.observe(duration_s)
        if retry:
            self._child(self.retries, ("retry", model, provider), self._target_labels).inc()
        if fallback:
            self._child(self.fallbacks, ("fallback", route), self._route_labels).inc()

    def observe_cache(self, *, kind: str, hit: bool) -> None:
        self._child(self.cache, ("cache", kind, hit), self._cache_labels).inc()

    def observe_cache_rejections(self, reasons: Iterable[str]) -> None:
        """Verify-stage refusals; a reason's kind is the part before its colon ("number: 5 vs 50" -> number)."""
        for reason in reasons:
            self.cache_rejections.labels(self.rejection_reason(reason.split(":", 1)[0].strip())).inc()

    def observe_cache_saved(self, *, model: str, usd: float) -> None:
        if usd > 0:
            self.cache_saved.labels(self.model(model)).inc(usd)

    def observe_cache_error(self, stage: str) -> None:
        self.cache_errors.labels(self.cache_stage(stage)).inc()

    def set_cache_backend(self, backend: str, *, up: bool, failed: bool = False) -> None:
        self.cache_backend_up.labels(backend).set(1.0 if up else 0.0)
        if failed:
            self.cache_backend_errors.labels(backend).inc()

    def observe_guardrails(self, actions: Iterable[Mapping[str, object]]) -> None:
        """Guardrail actions as the audit record holds them: dicts with type, action and count."""
        for action in actions:
            check = str(action.get("type", ""))
            what = str(action.get("action", ""))
            raw = action.get("count", 1)
            count = raw if isinstance(raw, int) and raw > 0 else 1
            self._child(self.guardrail_actions, ("guardrail", check, what), self._guardrail_labels).inc(count)

    def observe_batch_submitted(self, *, provider: str, model: str) -> None:
        """model: the model that serves the batch (a route's target, not the route)."""
        self.batches_submitted.labels(self.provider(provider), self.model(model)).inc()

    def observe_batch_ended(self, *, provider: str, status: str) -> None:
        self.batches_ended.labels(self.provider(provider), self.batch_status(status)).inc()

    def observe_batch_item(self, *, provider: str, model: str, code: str, cost_usd: float) -> None:
        """An item's outcome recorded (code: OK, or its failure's gRPC status name)."""
        bounded = self.provider(provider)
        self.batch_items.labels(bounded, self.code(code)).inc()
        if cost_usd:
            self.batch_cost.labels(bounded, self.model(model)).inc(cost_usd)

    def observe_drift_flag(self, *, model: str, provider: str, metric: str) -> None:
        """A drift flag raised (metric: latency_s, answer_tokens, status, ... or prompt_tokens:<route rule>)."""
        metric_name = metric.split(":", 1)[0]  # the route rule stays out of the label: it is unbounded
        self.drift_flags.labels(self.model(model), self.provider(provider), metric_name).inc()

    def set_breaker_state(self, *, provider: str, model: str, state: str) -> None:
        """state: closed, half_open or open; an unknown state raises ValueError (it would be a bug, not input)."""
        value = BREAKER_STATES.get(state)
        if value is None:
            raise ValueError(f"breaker state {state!r}: expected one of {', '.join(BREAKER_STATES)}")
        self._gauge(self.breaker_state, (model, provider), self._breaker_labels).set(value)

    def set_queue_depth(self, route: str, depth: int) -> None:
        self._gauge(self.queue_depth, (route,), self._route_only).set(depth)

    def observe_queue_wait(self, route: str, seconds: float) -> None:
        self._child(self.queue_wait, ("queue_wait", route), self._queue_labels).observe(seconds)

    def set_shared_state_up(self, *, up: bool) -> None:
        self.shared_state_up.set(1.0 if up else 0.0)

    def set_budget_remaining(self, team: str, usd: float) -> None:
        self._gauge(self.budget_remaining, (team,), self._team_labels).set(usd)

    # -- label children -------------------------------------------------------------------------------------------

    def _in_flight_of(self, kind: str) -> _Tally:
        tally = self._in_flight.get(kind)
        if tally is None:
            tally = self._in_flight[kind] = _Tally(self.in_flight.labels(self.kind(kind)))
        return tally

    def _labels_of(self, key: tuple[str, str, str, str, str, str]) -> tuple[str, str, str, str, str, str]:
        kind, route, model, provider, code, api = key
        return (
            self.kind(kind),
            self.route(route),
            self.model(model),
            self.provider(provider),
            self.code(code),
            self.api(api),
        )

    def _call_series(self, key: tuple[str, str, str, str, str, str]) -> _CallSeries:
        labels = self._labels_of(key)
        return _CallSeries(
            self._in_flight_of(key[0]),
            _Tally(self.requests.labels(*labels)),
            _Buckets(self.request_duration.labels(*labels)),
        )

    def _token_series(self, key: tuple[str, str, str, str, str, str]) -> tuple[_Buckets, _Buckets]:
        _, route, model, provider, _, _ = self._labels_of(key)
        operation = EMBED_OPERATION if key[0] == "embed" else OPERATION
        return (
            _Buckets(self.token_usage.labels(operation, provider, model, "input", route)),
            _Buckets(self.token_usage.labels(operation, provider, model, "output", route)),
        )

    def _child(self, metric: _M, key: tuple[object, ...], labels: _Labeller) -> _M:
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels(key))
            self._children[key] = child
        return child  # type: ignore[return-value]

    def _gauge(self, metric: Gauge, values: tuple[str, ...], labels: _Labeller) -> Gauge:
        return self._child(metric, (id(metric), *values), labels)

    # Each maps a cache key (its first item a tag) to bounded label values, in the metric's label order.
    def _ttfc_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (OPERATION, self.provider(str(key[3])), self.model(str(key[2])), self.route(str(key[1])))

    def _target_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.provider(str(key[2])), self.model(str(key[1])))

    def _breaker_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.provider(str(key[2])), self.model(str(key[1])))

    def _route_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.route(str(key[1])),)

    _route_only = _route_labels
    _queue_labels = _route_labels

    def _cache_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.cache_kind(str(key[1])), "hit" if key[2] else "miss")

    def _guardrail_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.guardrail_type(str(key[1])), self.guardrail_action(str(key[2])))

    def _team_labels(self, key: tuple[object, ...]) -> tuple[str, ...]:
        return (self.team(str(key[1])),)


def _with_empty(values: Iterable[str] | None) -> Iterable[str] | None:
    return None if values is None else (*values, "")


class _Tally:
    """A counter's or gauge's label child, incremented through its value: what `Counter.inc` and `Gauge.inc` do
    after their per-call checks (observable metric, non-negative amount), which a child made here always passes.
    `tests/observe/test_metrics.py` pins the series these write to what prometheus_client's own methods write."""

    __slots__ = ("inc",)

    def __init__(self, child: Counter | Gauge) -> None:
        value: ValueClass = child._value
        self.inc: Callable[[float], None] = value.inc


class _Buckets:
    """A histogram's label child, observed through its values: the bucket found by bisection instead of
    `Histogram.observe`'s loop over every bound, then the same two increments."""

    __slots__ = ("_bounds", "_buckets", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._bounds = tuple(child._upper_bounds)
        self._buckets: list[ValueClass] = child._buckets
        self._sum: ValueClass = child._sum

    def observe(self, amount: float) -> None:
        """`amount`: a finite number or infinity (durations and token counts are never NaN)."""
        self._sum.inc(amount)
        self._buckets[bisect_left(self._bounds, amount)].inc(1.0)


@dataclass(slots=True)
class _CallSeries:
    """The series a call's end writes, for one set of labels; the token and cost series once a call has some."""

    in_flight: _Tally
    requests: _Tally
    duration: _Buckets
    tokens: tuple[_Buckets, _Buckets] | None = None
    """Input, output."""
    cost: _Tally | None = None
