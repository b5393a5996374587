"""The schema, in SQLAlchemy Core: one definition that SQLite and PostgreSQL both get from `create_all`.

Times are epoch seconds (float): portable, cheap to compare, and what the code already holds.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

teams = Table(
    "teams",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("bodies", String(16), nullable=False),
    Column("retention_days", Integer, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False, index=True),
)

keys = Table(
    "keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("prefix", String(32), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("previous_hash", String(64), index=True),
    Column("previous_valid_until", Double),
    Column("team", String(128), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("name", String(256), nullable=False),
    Column("models", JSON),
    Column("limits", JSON, nullable=False),
    Column("conditions", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double),
    Column("revoked_at", Double),
    Column("updated_at", Double, nullable=False, index=True),
)

budgets = Table(
    "budgets",
    metadata,
    Column("scope", String(8), primary_key=True),
    Column("subject", String(128), primary_key=True),
    Column("period", String(8), primary_key=True),
    Column("hard_usd", Double),
    Column("soft_usd", Double),
    Column("downgrade_to", String(256)),
    Column("updated_at", Double, nullable=False, index=True),
)

# One row per (key, model, provider, route, kind) per audit batch: the sums of the calls the batch holds. Queries
# add rows up, so a row per call would only cost more writes (one call in ten thousand shares a row with others).
ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False, index=True),
    Column("key_id", String(64), nullable=False),
    Column("team", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("served_model", String(256), nullable=False),
    Column("provider", String(128), nullable=False),
    Column("route", String(256), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("requests", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cost_usd", Double, nullable=False),
    # Calls the response cache answered (in `requests`, their tokens not in the token sums) and what they saved.
    Column("cache_hits", Integer, nullable=False, server_default="0"),
    Column("cache_saved_usd", Double, nullable=False, server_default="0"),
    # Deferred calls (in `requests`), their cost, and what the same usage costs sent at once.
    Column("deferred_calls", Integer, nullable=False, server_default="0"),
    Column("deferred_cost_usd", Double, nullable=False, server_default="0"),
    Column("deferred_interactive_usd", Double, nullable=False, server_default="0"),
    Index("ix_ledger_team_at", "team", "at"),
    Index("ix_ledger_key_at", "key_id", "at"),
)

audit = Table(
    "audit",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("at", Double, nullable=False, index=True),
    Column("key_id", String(64), nullable=False),
    Column("team", String(128), nullable=False),
    Column("peer", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("model", String(256), nullable=False),
    Column("route", String(256), nullable=False),
    Column("served_model", String(256), nullable=False),
    Column("provider", String(128), nullable=False),
    Column("status", String(32), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("error", Text, nullable=False),
    Column("latency_ms", Double, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("cost_usd", Double, nullable=False),
    Column("attempts", JSON, nullable=False),
    Column("guardrails", JSON, nullable=False),
    Column("classification", String(16), nullable=False),
    Column("request_body", JSON),
    Column("response_body", Text),
    Column("cache", JSON),
    Column("cache_saved_usd", Double, nullable=False, server_default="0"),
    # The front door: grpc or http (the OpenAI-compatible one).
    Column("api", String(8), nullable=False, server_default="grpc"),
    Column("learned", JSON),
    # The prices a call was billed at, when its model has time-of-day prices (records/audit.py).
    Column("prices", JSON),
    # How a deferred call was held and what it would have cost sent at once (records/audit.py).
    Column("deferred", JSON),
    # Who wrote the record (a process of one instance) and its number in that writer's sequence: numbers missing
    # between two of a writer's records are records lost (the compliance report's audit completeness).
    Column("writer", String(64), nullable=False, server_default=""),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    # The Batches service's batch the call was an item of (kind "batch", or an item sent again on its own).
    Column("batch_id", String(64), nullable=False, server_default=""),
    # A stream's time to its first chunk (NULL for other calls), and the call's W3C trace id ("" when untraced).
    Column("ttfc_ms", Double),
    Column("trace_id", String(32), nullable=False, server_default=""),
    Index("ix_audit_team_at", "team", "at"),
)

# Ratings of calls, one per (call, metric, source): a second rating from the same source replaces the first.
feedback = Table(
    "feedback",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("metric", String(128), primary_key=True),
    Column("source", String(16), primary_key=True),
    # The rating as given: 0 or 1 for a boolean, the score for a float, the label's value for a label.
    Column("value", Double, nullable=False),
    # The value this row held before its last change; NULL for a first rating. Read back by the upsert itself, so
    # that a changed rating adjusts the profiles by the difference and a repeated one by nothing.
    Column("previous", Double),
    Column("label", String(128), nullable=False, server_default=""),
    Column("comment", Text, nullable=False, server_default=""),
    Column("key_id", String(64), nullable=False),
    Column("team", String(128), nullable=False),
    Column("at", Double, nullable=False, index=True),
)

# The learned strategy's profiles: decayed sums per (route, query type, model, epoch, field) that every worker adds
# its observations to (learning/profiles.py explains the epochs).
profile_sums = Table(
    "profile_sums",
    metadata,
    Column("route", String(256), primary_key=True),
    Column("query_type", String(256), primary_key=True),
    Column("model", String(256), primary_key=True),
    Column("epoch", Double, primary_key=True),
    Column("field", String(32), primary_key=True),
    Column("value", Double, nullable=False),
)

# The learned routes' query-type clusters (learning/clusters.py): per route, the centers its one writer learned, and
# that writer's lease.
query_clusters = Table(
    "query_clusters",
    metadata,
    Column("route", String(256), primary_key=True),
    Column("owner", String(32), nullable=False),
    Column("lease_until", Double, nullable=False),
    # ClusterState.to_bytes; NULL until the writer has seeded the centers.
    Column("state", LargeBinary),
)

# Shadow traffic: per mirrored call, how the candidate model's answer compared with the primary's. The shadow call
# itself is in the audit log (kind "shadow", `shadow_request_id`), its answer there as the team's body policy allows.
shadow_calls = Table(
    "shadow_calls",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("at", Double, nullable=False),
    Column("route", String(256), nullable=False),
    Column("team", String(128), nullable=False),
    Column("primary_model", String(256), nullable=False),
    Column("shadow_model", String(256), nullable=False),
    Column("shadow_request_id", String(64), nullable=False),
    # OK, the status the shadow call ended with, or OVER_BUDGET.
    Column("status", String(32), nullable=False),
    # Whether the copy reached the shadow's provider: not when the gateway's policies (key access, residency,
    # guardrails) refused it, or the budget was spent.
    Column("sent", Boolean, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("primary_latency_ms", Double, nullable=False),
    Column("shadow_latency_ms", Double, nullable=False),
    Column("primary_cost_usd", Double, nullable=False),
    Column("shadow_cost_usd", Double, nullable=False),
    # Word cosine of the two answers (insights/similarity.py); NULL unless the shadow answered.
    Column("similarity", Double),
    Index("ix_shadow_calls_route_at", "route", "at"),
)

# Deferred calls (ChatRequest.defer_up_to_s), one row from acceptance: the request (protobuf bytes) while it is
# pending, so that another worker, or the next start, sends it if its worker dies (its lease runs out); then the
# answer (protobuf bytes) or the error, for GetDeferred, until deferral.keep_answers_s after it came.
deferred_calls = Table(
    "deferred_calls",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("accepted_at", Double, nullable=False),
    Column("defer_up_to_s", Double, nullable=False),
    # pending, done or failed.
    Column("state", String(8), nullable=False),
    Column("request", LargeBinary),
    # What the call's key conditions and classification read when it is resumed: the client's address and its
    # metadata, the authorization header left out (a resumed call runs as its key, found by key_id).
    Column("peer", String(128), nullable=False, server_default=""),
    Column("metadata", JSON),
    Column("owner", String(64), nullable=False),
    Column("lease_until", Double, nullable=False),
    Column("response", LargeBinary),
    Column("error_code", String(32), nullable=False, server_default=""),
    Column("error_reason", String(64), nullable=False, server_default=""),
    Column("error_message", Text, nullable=False, server_default=""),
    Column("finished_at", Double),
    Index("ix_deferred_calls_state_lease", "state", "lease_until"),
    Index("ix_deferred_calls_finished_at", "finished_at"),
)

# The Batches service (gateway/batches): one row per batch, with where its submission to the provider stands, so a
# restarted process resumes it without sending it twice, and which process works on it now (the lease).
batch_jobs = Table(
    "batch_jobs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("team", String(128), nullable=False),
    # As the header asked (a model or a route), and the target serving it.
    Column("model", String(256), nullable=False),
    Column("served_model", String(256), nullable=False),
    Column("provider", String(128), nullable=False),
    Column("completion_window", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    # The uploaded file a batch of the HTTP front door (POST /v1/batches) was made from.
    Column("source_file_id", String(64)),
    # queued, validating, in_progress, finalizing, cancelling; then completed, expired, cancelled or failed.
    Column("status", String(16), nullable=False, index=True),
    # The submission's state machine (records/batches.py Step): stored, uploaded, creating, submitted, ended.
    Column("step", String(16), nullable=False),
    Column("input_file_id", String(256)),
    Column("provider_batch_id", String(256)),
    # When the provider was first asked to create the batch: what a restart looks for among the provider's batches
    # when it crashed before recording the answer.
    Column("creating_at", Double),
    Column("cancel_requested", Boolean, nullable=False, server_default="0"),
    Column("total", Integer, nullable=False),
    Column("estimate_usd", Double, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("lease_owner", String(64), nullable=False, server_default=""),
    Column("lease_until", Double, nullable=False, server_default="0"),
    Index("ix_batch_jobs_key_created", "key_id", "created_at"),
    Index("ix_batch_jobs_team_created", "team", "created_at"),
)

# One row per item of a batch: the request as the provider gets it (an OpenAI Chat Completions body, after the input
# guardrails), then its outcome. `billed` is set once the item's audit record (and ledger entry) is committed.
batch_items = Table(
    "batch_items",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("custom_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("classification", String(16), nullable=False),
    Column("guardrails", JSON, nullable=False),
    Column("estimate_usd", Double, nullable=False),
    # pending, succeeded or failed.
    Column("state", String(16), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("outcome", JSON),
    Column("cost_usd", Double, nullable=False, server_default="0"),
    Column("retried", Boolean, nullable=False, server_default="0"),
    Column("settled_at", Double),
    Column("billed", Boolean, nullable=False, server_default="0"),
    Index("ix_batch_items_batch_settled", "batch_id", "settled_at"),
)

# Files uploaded to the HTTP front door's /v1/files (purpose "batch"): a batch's input, as OpenAI's SDK sends it.
batch_files = Table(
    "batch_files",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("team", String(128), nullable=False),
    Column("filename", String(256), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("created_at", Double, nullable=False),
)

# Each running process's live figures (breakers, calls in flight, queues, drift flags, last purge), renewed about
# once a second, merged by the console (observe/live.py).
live_processes = Table(
    "live_processes",
    metadata,
    Column("process", String(64), primary_key=True),
    Column("at", Double, nullable=False),
    Column("snapshot", JSON, nullable=False),
)
