"""`batches:`: the Batches service, which sends whole files of chat requests through the providers' batch APIs at
their batch prices (gateway/batches)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.config.base import Strict


class BatchesConfig(Strict):
    enabled: bool = Field(default=True, description="Serve the Batches service and run its poller.")
    poll_interval_s: float = Field(
        default=30.0, gt=0, le=3600, description="How often the poller looks at the providers' batches."
    )
    lease_s: float = Field(
        default=120.0,
        gt=0,
        description="How long one process holds a batch it is working on; another process (a --workers sibling, "
        "another instance) takes it over only after this long without renewal.",
    )
    max_items: int = Field(
        default=50_000, ge=1, le=100_000, description="Items one batch may hold (OpenAI's limit per batch file)."
    )
    completion_window: Literal["24h"] = Field(
        default="24h", description="What a batch asks for when its header names none; 24h is all providers offer."
    )
    fallback: Literal["none", "individual", "batch"] = Field(
        default="individual",
        description="Items a provider failed (not those expired or cancelled): none keeps the failure; individual "
        "sends each again as an ordinary call through its model or route, with the route's fallbacks, at "
        "interactive prices; batch sends them together in a new provider batch on the route's next target with a "
        "batch API (at its batch prices), and keeps the failure when there is none.",
    )
