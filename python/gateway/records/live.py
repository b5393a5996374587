"""One process's live snapshot (observe/live.py), as the database keeps it (store/live.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ProcessLive:
    """One process's snapshot."""

    process: str
    """The process's name, as its audit records' writer has it: host, pid and a token of its start."""
    at: float
    in_flight: int = 0
    queued: dict[str, int] = field(default_factory=dict)
    """Calls waiting, per route with a queue."""
    breakers: list[dict[str, Any]] = field(default_factory=list)
    """Targets not plainly closed: {"target", "state", "rested_s"}."""
    drift: list[dict[str, Any]] = field(default_factory=list)
    """Flags its drift monitor raises now: {"model", "provider", "metric", "since", "detail"}."""
    last_purge_at: float | None = None
    """When it last purged audit records past retention (one process of a machine purges)."""

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ProcessLive:
        return cls(**{name: payload[name] for name in cls.__dataclass_fields__ if name in payload})
