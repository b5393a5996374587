"""Deferred calls: how long the gateway may hold calls that can wait, and how many it gathers per target."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import Strict


class DeferralConfig(Strict):
    """Calls with ChatRequest.defer_up_to_s are held per target, then sent together (deferral/)."""

    max_wait_s: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="The longest a call is held to gather others (its own defer_up_to_s may be shorter). A call may "
        "wait longer, up to its defer_up_to_s, for a cheaper time-of-day price window.",
    )
    max_batch: int = Field(default=32, ge=1, le=10_000, description="Held calls of one target that release them all.")
    min_prefix_tokens: int = Field(
        default=1024,
        ge=1,
        description="A shared prefix (everything before the last message, tools included) at least this long is "
        "worth warming the provider's prompt cache for: the calls sharing it go one first, then the rest. 1024 is "
        "the shortest prefix Anthropic and OpenAI cache.",
    )
    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A worker renews its held calls' lease in the state database every third of this; a call whose "
        "lease ran out (its worker died) is taken over and sent by another worker, or by the next start.",
    )
    keep_answers_s: float = Field(
        default=86_400.0, gt=0, description="How long a deferred call's answer stays fetchable with GetDeferred."
    )
