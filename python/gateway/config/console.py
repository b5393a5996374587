"""`console:`: the operators' web console served at /console by the HTTP front door (gateway/console)."""

from __future__ import annotations

from pydantic import Field

from gateway.config.base import Strict


class ConsoleConfig(Strict):
    enabled: bool = Field(default=True, description="Serve /console on the HTTP front door (server.http_address).")
    session_idle_s: int = Field(
        default=1800, ge=60, le=7 * 86_400, description="A session ends after this many seconds without a request."
    )
    secret_env: str | None = Field(
        default=None,
        description="Environment variable holding the secret that signs sessions (every instance must share it); "
        "unset: one is generated once into the state folder, which the workers of one machine share.",
    )
