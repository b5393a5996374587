"""What every process sharing Redis agrees on without needing the client: the key names, the notices channel and
the error a shared-state call raises. Apart from redis.py so that a process without `state.redis_url` never imports
redis-py (about 8 MB of a worker's memory)."""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

PREFIX: Final = "gw:"
HEARTBEAT_S: Final = 2.0
"""How often a process says it is alive; it counts as gone after three missed beats."""
CHANGES: Final = f"{PREFIX}changes"
"""The pub/sub channel of notices between processes (state/notices.py)."""


class StateUnavailable(Exception):
    """Redis failed or did not answer within the timeout."""


def part(name: str) -> str:
    """A name as a key part: percent-encoded, so no brace, colon or glob character from a name reaches a key."""
    return quote(name, safe="")


def tag(kind: str, name: str) -> str:
    """A hash tag: every key of one script shares it, so all of them sit in one Redis Cluster slot."""
    return f"{PREFIX}{{{kind}:{part(name)}}}:"
