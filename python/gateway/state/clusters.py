"""The learned routes' query-type clusters in Redis, when the state is shared there: per route, the centers and the
lease of the one process that writes them (learning/clusters.py), under one hash tag."""

from __future__ import annotations

from gateway.state.keyspace import tag
from gateway.state.redis import RedisState


class RedisClusterStore:
    def __init__(self, state: RedisState) -> None:
        self._state = state

    async def lead(self, route: str, owner: str, lease_s: float) -> bool:
        return await self._state.lead(tag("clusters", route) + "writer", owner, lease_s)

    async def save(self, route: str, owner: str, state: bytes) -> None:
        keys = tag("clusters", route)
        await self._state.save_if_lead(keys + "writer", owner, keys + "centers", state)

    async def load(self, route: str) -> bytes | None:
        return await self._state.read_bytes(tag("clusters", route) + "centers")
