"""The learned routes' profile sums in Redis, when the state is shared there: one hash, a field per (route, query
type, model, epoch, figure), each worker adding its observations with HINCRBYFLOAT (learning/profiles.py)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.learning.profiles import RowKey
from gateway.state.keyspace import PREFIX
from gateway.state.redis import RedisState

PROFILES_KEY = f"{PREFIX}profiles"
_SEPARATOR = "\x1f"
"""Between a field's parts: a character no route, query type or model name holds."""


class RedisProfileStore:
    def __init__(self, state: RedisState) -> None:
        self._state = state

    async def add(self, rows: Mapping[RowKey, Mapping[str, float]]) -> None:
        fields = {
            _SEPARATOR.join((route, kind, model, repr(epoch), name)): value
            for (route, kind, model, epoch), figures in rows.items()
            for name, value in figures.items()
        }
        if fields:
            await self._state.add_to_hash(PROFILES_KEY, fields)

    async def load(self, oldest: Mapping[str, float], floor: float) -> dict[RowKey, dict[str, float]]:
        loaded: dict[RowKey, dict[str, float]] = {}
        stale = []
        for field, value in (await self._state.read_hash(PROFILES_KEY)).items():
            route, kind, model, epoch_text, name = field.split(_SEPARATOR)
            epoch = float(epoch_text)
            if epoch < oldest.get(route, floor):
                stale.append(field)  # weighs under 2^-16 of the newest evidence
                continue
            loaded.setdefault((route, kind, model, epoch), {})[name] = value
        if stale:
            await self._state.drop_from_hash(PROFILES_KEY, stale)
        return loaded
