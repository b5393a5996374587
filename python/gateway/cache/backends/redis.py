"""The shared backend: entries in Redis, so every gateway process and instance serves the others' answers.

redis-py's asyncio client with the hiredis parser (the Redis project's own client and C parser; pooled connections).
One key per entry, `<prefix>e:<team>|<namespace>|<model>|<id>` with each part percent-encoded (no glob character can
appear in them), expiring with the entry (PX), so Redis drops stale answers itself and its maxmemory policy bounds
the store. Purges and statistics walk the matching keys with SCAN: admin calls, never on the request path.
Retries are off: a call must not wait for Redis to come back; the cache above decides when to try again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache.backends import BackendUnavailable, PurgeFilter, SharedVector, StoredStats
from gateway.cache.entries import CacheEntry, EntryKey, decode, encode
from gateway.state.redis import pooled_client

_SCAN_BATCH = 500
log = logging.getLogger(__name__)


class RedisBackend:
    name = "redis"
    max_bytes = 0

    def __init__(self, url: str, *, prefix: str, timeout_s: float, feed_length: int = 200_000) -> None:
        self._redis = pooled_client(url, timeout_s)
        # Following the feed blocks on Redis for a while by design: its own connection, with a timeout above that.
        self._follower = Redis.from_url(
            url, socket_timeout=timeout_s + 5.0, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        self._entries = f"{prefix}e:"
        self._feed = f"{prefix}semantic"
        self._feed_length = feed_length

    async def get(self, key: EntryKey, now: float) -> CacheEntry | None:
        with _reached():
            data = await self._redis.get(self._name(key))
        if data is None:
            return None
        try:
            entry = decode(data if isinstance(data, bytes) else data.encode())
        except (ValueError, KeyError, TypeError) as err:
            # Another release's format or a damaged value: a miss, and the key goes so the next answer replaces it.
            log.warning("dropped an unreadable cache entry %s: %s", key.id, err)
            with _reached():
                await self._redis.delete(self._name(key))
            return None
        return entry if entry.expires_at > now else None

    async def put(self, entry: CacheEntry, now: float) -> None:
        ttl_ms = int((entry.expires_at - now) * 1000)
        if ttl_ms <= 0:
            return
        with _reached():
            await self._redis.set(self._name(entry.key), encode(entry), px=ttl_ms)

    async def purge(self, where: PurgeFilter) -> list[EntryKey]:
        purged: list[EntryKey] = []
        with _reached():
            async for names in self._scan(where):
                if where.before is not None:
                    values = await self._redis.mget(names)
                    names = [
                        n
                        for n, v in zip(names, values, strict=True)
                        if v is not None and orjson.loads(v)["created_at"] < where.before
                    ]
                if names:
                    await self._redis.delete(*names)
                    purged.extend(self._key(name) for name in names)
        return purged

    async def stats(self, team: str | None) -> StoredStats:
        entries = size = 0
        with _reached():
            async for names in self._scan(PurgeFilter(team=team)):
                pipe = self._redis.pipeline(transaction=False)
                for name in names:
                    pipe.strlen(name)
                lengths = await pipe.execute()
                entries += len(names)
                size += sum(lengths)
        return StoredStats(entries, size)

    async def publish(self, item: SharedVector) -> None:
        """One entry of a Redis stream trimmed to about feed_length entries (the semantic index's own bound)."""
        key = item.key
        fields: dict[str, str | bytes | float] = {
            "c": item.context,
            "t": key.team,
            "n": key.namespace,
            "m": key.model,
            "i": key.id,
            "p": item.prompt,
            "x": item.expires_at,
            "v": item.vector,
            "o": item.origin,
        }
        with _reached():
            await self._redis.xadd(self._feed, fields, maxlen=self._feed_length, approximate=True)  # type: ignore[arg-type]

    async def follow(self, after: str, block_s: float) -> tuple[str, list[SharedVector]]:
        with _reached():
            found: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = await self._follower.xread(  # type: ignore[assignment]
                {self._feed: after}, count=1000, block=int(block_s * 1000)
            )
        items = []
        for _, entries in found:
            for position, f in entries:
                after = position.decode()
                items.append(
                    SharedVector(
                        context=f[b"c"].decode(),
                        key=EntryKey(f[b"t"].decode(), f[b"n"].decode(), f[b"m"].decode(), f[b"i"].decode()),
                        prompt=f[b"p"].decode(),
                        expires_at=float(f[b"x"]),
                        vector=f[b"v"],
                        origin=f[b"o"].decode(),
                    )
                )
        return after, items

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)  # a pool given to Redis() is not closed by default
        await self._follower.aclose()

    def _name(self, key: EntryKey) -> str:
        parts = (quote(key.team, safe=""), quote(key.namespace, safe=""), quote(key.model, safe=""), key.id)
        return self._entries + "|".join(parts)

    def _key(self, name: bytes) -> EntryKey:
        team, namespace, model, entry_id = name.decode()[len(self._entries) :].split("|")
        return EntryKey(unquote(team), unquote(namespace), unquote(model), entry_id)

    async def _scan(self, where: PurgeFilter) -> AsyncIterator[list[bytes]]:
        """Batches of the names that match the filter's team, namespace, model and id (not its age)."""
        parts = [
            "*" if value is None else (value if i == 3 else quote(value, safe=""))
            for i, value in enumerate((where.team, where.namespace, where.model, where.entry_id))
        ]
        pattern = self._entries + "|".join(parts)
        batch: list[bytes] = []
        async for name in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
            batch.append(name)
            if len(batch) >= _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


@contextmanager
def _reached() -> Iterator[None]:
    """Any failure to reach Redis or to hear back in time, as the one error the cache above handles."""
    try:
        yield
    except (TimeoutError, RedisError, OSError) as err:
        # The error's kind and message; a redis URL's password is never part of redis-py's messages.
        raise BackendUnavailable(f"redis: {type(err).__name__}: {err}") from None
