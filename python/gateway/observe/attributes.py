"""Span attribute names: the OpenTelemetry GenAI semantic conventions where one exists, the gateway's own under
`llm_gateway.`. Kept in one place so spans, docs and tests agree on the spelling.

Never an attribute for a key, a secret or free text from the caller (prompt and answer text only through
`CallSpan.record_content`, behind a flag)."""

from __future__ import annotations

from typing import Final

# GenAI semantic conventions (gen-ai-spans).
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"

# RPC semantic conventions, on the server span.
RPC_SYSTEM: Final = "rpc.system"
RPC_SERVICE: Final = "rpc.service"
RPC_METHOD: Final = "rpc.method"
RPC_GRPC_STATUS_CODE: Final = "rpc.grpc.status_code"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_ROUTE: Final = "http.route"

# The gateway's own.
PREFIX: Final = "llm_gateway."
REQUEST_ID: Final = "llm_gateway.request_id"
ROUTE: Final = "llm_gateway.route"
TARGET: Final = "llm_gateway.target"
"""provider/model of the target that served the call (or that an attempt went to)."""
ATTEMPT: Final = "llm_gateway.attempt"
"""0-based number of the attempt within the call."""
RETRY: Final = "llm_gateway.retry"
"""0 for a target's first try, n for its n-th retry."""
HEDGED: Final = "llm_gateway.hedged"
ATTEMPT_OUTCOME: Final = "llm_gateway.attempt.outcome"
ATTEMPTS: Final = "llm_gateway.attempts"
CACHE_HIT: Final = "llm_gateway.cache.hit"
CACHE_KIND: Final = "llm_gateway.cache.kind"
GUARDRAIL_TYPES: Final = "llm_gateway.guardrail.types"
GUARDRAIL_ACTIONS: Final = "llm_gateway.guardrail.actions"
"""type/kind/action of each action taken, e.g. pii/EMAIL_ADDRESS/redact; never the value found."""
GUARDRAIL_COUNT: Final = "llm_gateway.guardrail.count"
COST_USD: Final = "llm_gateway.cost_usd"
TEAM: Final = "llm_gateway.team"
KEY_ID: Final = "llm_gateway.key_id"
STREAMING: Final = "llm_gateway.streaming"
API: Final = "llm_gateway.api"
"""The front door: grpc or http."""
EMBEDDING_INPUTS: Final = "llm_gateway.embedding.inputs"
BATCH_ID: Final = "llm_gateway.batch.id"
BATCH_STEP: Final = "llm_gateway.batch.step"
"""The step a batch was at when a poll round worked on it (stored, uploaded, creating, submitted)."""
GEN_AI_REQUEST_ENCODING_FORMATS: Final = "gen_ai.request.encoding_formats"
CACHED_INPUT_TOKENS: Final = "llm_gateway.usage.cached_input_tokens"
REASON: Final = "llm_gateway.reason"
"""The gateway's reason for a failed call (e.g. BUDGET_EXCEEDED): an enum-like token, never a message."""

OPERATION_CHAT: Final = "chat"
OPERATION_EMBEDDINGS: Final = "embeddings"
STAGE_US: Final = "llm_gateway.stage_us."
"""Prefix of one attribute per stage that did not wait, e.g. llm_gateway.stage_us.authenticate: its time in µs."""
