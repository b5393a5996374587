"""The typed configuration. Validated once at start; the rest of the code never reads raw dicts."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, model_validator

from gateway.config.base import Name, Strict
from gateway.config.batches import BatchesConfig
from gateway.config.cache import CacheConfig, CachePolicyConfig
from gateway.config.console import ConsoleConfig
from gateway.config.deferral import DeferralConfig
from gateway.config.guardrails import GuardrailsConfig, ResidencyConfig, merge_guardrails
from gateway.config.learning import FeedbackConfig
from gateway.config.observe import ObserveConfig
from gateway.config.prices import PriceWindow, check_windows, schedule
from gateway.config.routes import CircuitBreakerConfig, RouteConfig, Strategy
from gateway.records.governance import BodyPolicy, Period, Role
from gateway.records.prices import Prices, PriceSchedule


class ProviderType(StrEnum):
    OPENAI = "openai"
    AZURE_OPENAI = "azure_openai"
    OPENAI_COMPATIBLE = "openai_compatible"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"
    BEDROCK = "bedrock"
    SIMULATED = "simulated"


DEFAULT_BASE_URLS: dict[ProviderType, str] = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com",
    ProviderType.GEMINI: "https://generativelanguage.googleapis.com",
}


class SimulatedQuality(Strict):
    """Prompts of one kind, and per model the probability that the simulated answer to one is good."""

    prompt_regex: str = Field(description="A Python regex searched in the last user message.")
    good: dict[str, float] = Field(description="Model name -> probability of a good answer, 0 to 1.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            re.compile(self.prompt_regex)
        except re.error as err:
            raise ValueError(f"prompt_regex {self.prompt_regex!r} does not compile: {err}") from None
        if any(not 0 <= p <= 1 for p in self.good.values()):
            raise ValueError("good: probabilities lie between 0 and 1")
        return self


class SimulationConfig(Strict):
    """How a simulated provider behaves: its speed, how often it fails, and how often its answers are good."""

    time_to_first_token_ms: float = Field(default=0.0, ge=0)
    per_token_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    max_answer_tokens: int = Field(default=64, ge=1, le=100_000)
    quality: list[SimulatedQuality] = Field(
        default_factory=list,
        description="The first row whose regex matches the prompt draws the answer good or bad; the answer's "
        "prefix says which, e.g. '[simulated small: good answer]'.",
    )
    seed: int | None = Field(default=None, description="Seeds the draws of failures and of good answers.")
    batch_delay_s: float | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="Set: it has a batch API (the Batches service), which ends a batch this long after it was made. "
        "Unset: no batch API, as a provider without one.",
    )


class ProviderConfig(Strict):
    name: Name
    type: ProviderType
    base_url: str | None = Field(default=None, description="Root of the API; defaults to the provider's public URL.")
    api_key_env: str | None = Field(default=None, description="Environment variable holding the provider API key.")
    api_version: str | None = Field(
        default=None,
        description="azure_openai: the api-version query parameter; anthropic: the anthropic-version header.",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent on every upstream request.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    timeout_s: float = Field(default=600.0, gt=0, description="Upper bound of one upstream call, streaming included.")
    max_connections: int = Field(default=256, ge=1, description="Pooled keep-alive connections to this provider.")
    region: str | None = Field(
        default=None,
        description="Where the provider processes data, e.g. eu; for residency. bedrock: the AWS region called and "
        "signed for (unset: AWS_REGION, AWS_DEFAULT_REGION or the profile's region), which residency then sees.",
    )
    profile: str | None = Field(
        default=None,
        description="bedrock: the AWS profile (~/.aws/config, ~/.aws/credentials) to take credentials and region "
        "from; unset: the standard chain (AWS_PROFILE included).",
    )
    compliance: frozenset[str] = Field(default_factory=frozenset, description="Labels such as hipaa, gdpr.")
    simulation: SimulationConfig = Field(default_factory=SimulationConfig)

    @model_validator(mode="after")
    def _check_type_fields(self) -> Self:
        needs_url = self.type in (ProviderType.AZURE_OPENAI, ProviderType.OPENAI_COMPATIBLE)
        if needs_url and not self.base_url:
            raise ValueError(f"provider type {self.type.value} needs base_url")
        if self.type is ProviderType.AZURE_OPENAI and not self.api_version:
            raise ValueError("provider type azure_openai needs api_version (e.g. 2024-10-21)")
        if self.type is ProviderType.BEDROCK and self.api_key_env:
            raise ValueError(
                "provider type bedrock signs requests with AWS credentials (the standard chain, or `profile`); "
                "remove api_key_env"
            )
        if self.profile is not None and self.type is not ProviderType.BEDROCK:
            raise ValueError("profile is for provider type bedrock only")
        return self

    @property
    def url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        if self.type is ProviderType.BEDROCK and self.region:
            # The public endpoint of the region (China's partition has its own domain); VPC or FIPS endpoints go in
            # base_url.
            domain = "amazonaws.com.cn" if self.region.startswith("cn-") else "amazonaws.com"
            return f"https://bedrock-runtime.{self.region}.{domain}"
        return DEFAULT_BASE_URLS.get(self.type, "")

    def api_key(self) -> SecretStr | None:
        """The key from the environment, read when the provider is built; SecretStr keeps it out of reprs and logs."""
        if not self.api_key_env:
            return None
        value = os.environ.get(self.api_key_env)
        return SecretStr(value) if value else None


CAPABILITIES = frozenset({"streaming", "tools", "images", "json_mode"})
CHAT_CAPABILITIES = frozenset({"streaming", "tools", "json_mode"})


class ModelKind(StrEnum):
    """What a model answers: Chat and ChatStream, or Embed. A call of the other kind is refused."""

    CHAT = "chat"
    EMBEDDING = "embedding"


EMBEDDING_PROVIDERS = frozenset(
    {
        ProviderType.OPENAI,
        ProviderType.AZURE_OPENAI,
        ProviderType.OPENAI_COMPATIBLE,
        ProviderType.GEMINI,
        ProviderType.BEDROCK,
        ProviderType.SIMULATED,
    }
)
"""Provider types whose adapter implements `Provider.embed` (providers/base.py)."""


class QuotaConfig(Strict):
    """What the provider allows this deployment (its account's limits). The gateway keeps under them itself, so a
    busy target is skipped or waited for instead of earning 429s."""

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute.")
    tpm: int | None = Field(default=None, ge=1, description="Prompt plus max_tokens per minute, settled on usage.")
    max_concurrent: int | None = Field(default=None, ge=1, description="Calls in flight at once.")


class DeploymentConfig(Strict):
    """One more place serving the same model (another region, another key): the model's deployments form a pool."""

    provider: Name
    upstream_model: str | None = Field(default=None, description="The model id there; defaults to the model's.")
    quota: QuotaConfig | None = Field(default=None, description="This deployment's quota; defaults to the model's.")
    input_cost_per_mtok: float | None = Field(
        default=None, ge=0, description="This provider's price; default: model's."
    )
    output_cost_per_mtok: float | None = Field(default=None, ge=0)
    cached_input_cost_per_mtok: float | None = Field(default=None, ge=0)
    batch_input_cost_per_mtok: float | None = Field(default=None, ge=0)
    batch_output_cost_per_mtok: float | None = Field(default=None, ge=0)
    prices: list[PriceWindow] | None = Field(
        default=None, description="This provider's time-of-day prices; default: the model's."
    )

    @model_validator(mode="after")
    def _check_prices(self) -> Self:
        check_windows(self.prices or [])
        return self


class ModelConfig(Strict):
    name: Name = Field(description="What clients put in ChatRequest.model.")
    provider: Name
    upstream_model: str | None = Field(default=None, description="The provider's model id; defaults to name.")
    deployments: list[DeploymentConfig] = Field(
        default_factory=list, description="Further deployments; calls are balanced over all by load and health."
    )
    quota: QuotaConfig | None = Field(default=None, description="The provider's limits for each deployment.")
    input_cost_per_mtok: float = Field(default=0.0, ge=0)
    output_cost_per_mtok: float = Field(default=0.0, ge=0)
    cached_input_cost_per_mtok: float | None = Field(default=None, ge=0)
    batch_input_cost_per_mtok: float | None = Field(
        default=None,
        ge=0,
        description="Batches service: the fixed price of a batch item's prompt; unset: half of input_cost_per_mtok "
        "(OpenAI's, Anthropic's and Gemini's batch discount).",
    )
    batch_output_cost_per_mtok: float | None = Field(
        default=None, ge=0, description="Batches service: unset: half of output_cost_per_mtok."
    )
    context_window: int = Field(default=128_000, ge=1)
    max_output_tokens: int = Field(default=4096, ge=1)
    capabilities: frozenset[str] = Field(default=CHAT_CAPABILITIES)
    tokenizer: str | None = Field(default=None, description="cl100k_base or o200k_base; default from upstream_model.")
    prices: list[PriceWindow] = Field(
        default_factory=list,
        description="Time-of-day prices: windows (in one timezone, never overlapping) when other prices apply.",
    )
    cache: CachePolicyConfig | None = Field(default=None, description="Unset: calls to this model are not cached.")
    kind: ModelKind = Field(default=ModelKind.CHAT, description="chat, or embedding (served by Embed).")
    dimensions: int | None = Field(
        default=None, ge=1, le=65_536, description="embedding: the length of the vectors the model returns."
    )
    embedding_space: str | None = Field(
        default=None,
        description="embedding: what makes two models' vectors comparable (default: upstream_model); a route's "
        "targets must share it, so a fallback never mixes vectors from different spaces.",
    )
    max_batch_inputs: int | None = Field(
        default=None, ge=1, le=10_000, description="embedding: inputs per upstream request; default: the provider's."
    )

    @model_validator(mode="after")
    def _check_capabilities(self) -> Self:
        unknown = set(self.capabilities) - CAPABILITIES
        if unknown:
            raise ValueError(f"unknown capabilities {sorted(unknown)}; valid: {sorted(CAPABILITIES)}")
        try:
            check_windows(self.prices)
        except ValueError as err:
            raise ValueError(f"model {self.name!r}: {err}") from None
        if self.tokenizer not in (None, "cl100k_base", "o200k_base"):
            raise ValueError("tokenizer must be cl100k_base or o200k_base")
        if self.kind is ModelKind.EMBEDDING:
            if self.dimensions is None:
                raise ValueError(
                    "kind embedding needs dimensions: the length of the vectors the model returns (e.g. 1536)"
                )
            if "capabilities" in self.model_fields_set and self.capabilities:
                raise ValueError("an embedding model takes no capabilities (they describe chat models)")
            # Frozen model: the chat default does not describe an embedding model.
            object.__setattr__(self, "capabilities", frozenset())
        elif self.dimensions is not None or self.embedding_space is not None or self.max_batch_inputs is not None:
            raise ValueError("dimensions, embedding_space and max_batch_inputs are for kind: embedding models")
        return self

    @cached_property
    def schedule(self) -> PriceSchedule:
        """The prices in force at any time (built once: it remembers the span of time its last answer holds for)."""
        base = Prices(self.input_cost_per_mtok, self.output_cost_per_mtok, self.cached_input_cost_per_mtok)
        return schedule(base, self.prices)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A deployment's copy with other prices must not keep the schedule built from the model's."""
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("schedule", None)
        return copy

    @property
    def space(self) -> tuple[str, int | None]:
        """Two embedding models whose vectors can be compared: the same space and the same length."""
        return (self.embedding_space or self.upstream, self.dimensions)

    @property
    def upstream(self) -> str:
        return self.upstream_model or self.name


class KeyConfig(Strict):
    """A gateway key declared in the config: by its SHA-256 (hex) or by an environment variable holding it."""

    name: Name
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = None
    models: frozenset[str] | None = Field(default=None, description="Models and routes this key may call; unset: all.")
    team: str = Field(default="", description="The team the key belongs to (routing rules may match on it).")
    role: Role = Role.MEMBER
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.key_sha256 is None) == (self.key_env is None):
            raise ValueError("set exactly one of key_sha256 and key_env")
        return self


class BudgetConfig(Strict):
    period: Period
    hard_usd: float | None = Field(default=None, ge=0, description="Calls that would go over are refused.")
    soft_usd: float | None = Field(default=None, ge=0, description="Past it, calls go to downgrade_to.")
    downgrade_to: str | None = Field(default=None, description="A cheaper model or route for calls past soft_usd.")

    @model_validator(mode="after")
    def _check_caps(self) -> Self:
        if self.hard_usd is None and self.soft_usd is None:
            raise ValueError("set hard_usd, soft_usd or both")
        if self.soft_usd is not None and self.downgrade_to is None:
            raise ValueError("soft_usd needs downgrade_to: the model calls go to past it")
        return self


class TeamConfig(Strict):
    """A team declared in the config; teams can also be created through the Admin API."""

    name: Name
    bodies: BodyPolicy = Field(default=BodyPolicy.NONE, description="What audit records keep of bodies.")
    retention_days: int | None = Field(default=None, ge=1, description="Audit retention; default: audit's.")
    labels: dict[str, str] = Field(default_factory=dict)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    guardrails: dict[str, Any] | None = Field(
        default=None, description="Overrides of the gateway's guardrails: only the keys given change."
    )
    residency: ResidencyConfig | None = Field(default=None, description="Narrows the gateway's residency rules.")


class AuditConfig(Strict):
    enabled: bool = Field(default=True, description="Off: only the ledger (usage and cost) is written.")
    mode: Literal["batched", "strict"] = Field(
        default="batched",
        description="batched: gathered flush_interval_ms past the last write, then committed; strict: before replying.",
    )
    flush_interval_ms: float = Field(default=10.0, gt=0, le=50)
    retention_days: int = Field(default=30, ge=1, description="For teams that set none.")
    purge_interval_s: float = Field(default=3600.0, gt=0)


class StateConfig(Strict):
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite in the state folder. PostgreSQL: "
        "postgresql+asyncpg://user:password@host/db",
    )
    sync_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="How often a worker reads key, team and budget changes from the database: the fallback when a "
        "change notice (Redis or PostgreSQL) was missed.",
    )
    redis_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// (TLS), AUTH in the URL: the live state every worker and instance shares "
        "(rate limits, budget counters, key changes, target health). Unset: each process keeps its own.",
    )


class LimitsConfig(Strict):
    """Rate limits and budget counters: kept in each process, or shared through Redis by every worker and
    instance."""

    backend: Literal["memory", "redis"] | None = Field(
        default=None, description="Unset: redis when state.redis_url is set, else memory."
    )
    mode: Literal["exact", "lease"] = Field(
        default="exact",
        description="exact: every call's limits in one Redis round trip, never over a limit. lease: each process "
        "takes lease_size requests (or tokens for that many calls) at a time and serves them locally; a limit can "
        "be passed by at most (processes x lease_size) in any window.",
    )
    lease_size: int = Field(default=20, ge=1, le=10_000)
    on_redis_error: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open",
        description="fail_open: while Redis fails or is slow, each process keeps the limits itself, divided by "
        "the live processes last seen; fail_closed: calls get UNAVAILABLE with a retry delay.",
    )
    redis_timeout_s: float = Field(default=0.25, gt=0, le=10)


class AuthConfig(Strict):
    failures_per_minute: float = Field(default=30.0, gt=0, description="Failed authentications allowed per address.")
    failure_burst: float = Field(default=30.0, ge=1)


class TlsConfig(Strict):
    cert_file: str
    key_file: str
    client_ca_file: str | None = Field(default=None, description="Set to require client certificates (mutual TLS).")


class ServerConfig(Strict):
    address: str = "127.0.0.1:50051"
    http_address: str | None = Field(
        default=None,
        description="HOST:PORT of the OpenAI-compatible HTTP front door; --http-address and GATEWAY_HTTP_ADDR "
        "override it; unset or empty: off.",
    )
    tls: TlsConfig | None = None
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_concurrent_streams: int = Field(default=1024, ge=1)
    max_in_flight: int = Field(
        default=10_000,
        ge=1,
        description="Calls this process serves at once; past it a call is refused at once with RESOURCE_EXHAUSTED "
        "(GATEWAY_OVERLOADED) and RetryInfo.",
    )
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    workers: int = Field(
        default=1,
        ge=0,
        le=256,
        description="Processes serving the one address (SO_REUSEPORT) under a supervisor; 0: one per core. 1 runs "
        "the server in this process, with no supervisor.",
    )
    max_input_chars: int = Field(default=2_000_000, ge=1, description="Upper bound on a request's total text.")


class GatewayConfig(Strict):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: list[ProviderConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(min_length=1)
    keys: list[KeyConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=CircuitBreakerConfig)
    teams: list[TeamConfig] = Field(default_factory=list)
    guardrails: GuardrailsConfig | None = Field(default=None, description="Unset: no guardrails but the teams' own.")
    residency: ResidencyConfig | None = None
    audit: AuditConfig = Field(default_factory=AuditConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    observe: ObserveConfig = Field(default_factory=ObserveConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    deferral: DeferralConfig = Field(default_factory=DeferralConfig)
    batches: BatchesConfig = Field(default_factory=BatchesConfig)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _unique("providers", [p.name for p in self.providers])
        _unique("models and routes", [m.name for m in self.models] + [r.name for r in self.routes])
        _unique("keys", [k.name for k in self.keys])
        _unique("teams", [t.name for t in self.teams])
        for team in self.teams:
            if team.guardrails is not None:
                try:
                    merge_guardrails(self.guardrails or GuardrailsConfig(), team.guardrails)
                except ValueError as err:
                    raise ValueError(f"team {team.name!r}: guardrails: {err}") from None
        names = {m.name for m in self.models} | {r.name for r in self.routes}
        for team in self.teams:
            for budget in team.budgets:
                if budget.downgrade_to is not None and budget.downgrade_to not in names:
                    raise ValueError(
                        f"team {team.name!r}: downgrade_to {budget.downgrade_to!r} is not a model or route"
                    )
        providers = {p.name: p for p in self.providers}
        for model in self.models:
            for provider in (model.provider, *(d.provider for d in model.deployments)):
                if provider not in providers:
                    raise ValueError(f"model {model.name!r} names unknown provider {provider!r}")
                kind = providers[provider].type
                if model.kind is ModelKind.EMBEDDING and kind not in EMBEDDING_PROVIDERS:
                    raise ValueError(
                        f"model {model.name!r} is an embedding model but provider {provider!r} ({kind.value}) serves "
                        f"no embeddings; embedding providers: {', '.join(sorted(EMBEDDING_PROVIDERS))}"
                    )
        _check_routes(self.routes, {m.name: m for m in self.models})
        for route in self.routes:
            if route.learned is not None and self.feedback.metric(route.learned.quality) is None:
                raise ValueError(
                    f"route {route.name!r}: learned.quality {route.learned.quality!r} is not in feedback.metrics"
                )
        if self.limits.backend == "redis" and self.state.redis_url is None:
            raise ValueError("limits.backend is redis: set state.redis_url")
        return self

    def provider(self, name: str) -> ProviderConfig:
        return next(p for p in self.providers if p.name == name)


def _check_routes(routes: list[RouteConfig], models: dict[str, ModelConfig]) -> None:
    """Targets name models; rules name models or routes, without cycles; every model a route may reach is of one
    kind, and for embeddings of one space (the same model, the same dimensions): vectors from another space are not
    comparable, so a fallback to one would silently corrupt the caller's index."""
    by_name = {r.name: r for r in routes}
    for route in routes:
        for target in route.targets:
            if target.model not in models:
                raise ValueError(f"route {route.name!r}: target {target.model!r} is not a model")
        if route.shadow is not None and route.shadow.model not in models:
            raise ValueError(f"route {route.name!r}: shadow model {route.shadow.model!r} is not a model")
        for name in [rule.target for rule in route.rules] + ([route.default] if route.default else []):
            if name not in models and name not in by_name:
                raise ValueError(f"route {route.name!r}: {name!r} is neither a model nor a route")

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"routes form a cycle: {' -> '.join((*path, name))}")
        route = by_name.get(name)
        if route is not None and route.strategy is Strategy.RULES:
            for rule_target in [rule.target for rule in route.rules] + [route.default or ""]:
                visit(rule_target, (*path, name))

    for route in routes:
        visit(route.name, ())

    def reached(name: str) -> list[ModelConfig]:
        route = by_name.get(name)
        if route is None:
            return [models[name]]
        names = [t.model for t in route.targets] + [rule.target for rule in route.rules] + [route.default or ""]
        return [model for target in names if target for model in reached(target)]

    for route in routes:
        found = reached(route.name)
        kinds = {m.kind for m in found}
        if len(kinds) > 1:
            raise ValueError(f"route {route.name!r} mixes chat and embedding models: {_names(found)}")
        spaces = {m.space for m in found if m.kind is ModelKind.EMBEDDING}
        if len(spaces) > 1:
            shown = "; ".join(
                f"{m.name}: {m.space[0]}, {m.space[1]} dimensions" for m in sorted(found, key=lambda m: m.name)
            )
            raise ValueError(
                f"route {route.name!r} mixes embedding spaces ({shown}): vectors from different models or "
                "dimensions cannot be compared, so a fallback among them would corrupt the caller's index; give "
                "the route targets of one embedding_space and dimensions"
            )


def _names(models: list[ModelConfig]) -> str:
    return ", ".join(sorted(f"{m.name} ({m.kind.value})" for m in models))


def _unique(section: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{section}: duplicate name {name!r}")
        seen.add(name)
