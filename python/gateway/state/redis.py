"""The live state every worker and instance shares through Redis: limits and budget counters (Lua scripts, one
round trip each), the processes alive, and notices of changes (pub/sub).

redis-py's asyncio client with hiredis, a blocking pool (a burst waits for a connection instead of failing) and no
retries: a call must not wait for Redis to come back; the limits above decide what a failure means.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.state import lua
from gateway.state.keyspace import CHANGES, HEARTBEAT_S, PREFIX, StateUnavailable

log = logging.getLogger("gateway.state")


def pooled_client(url: str, timeout_s: float) -> Redis:
    """A client for calls that must not wait long: every command bounded by `timeout_s`, no retries (the caller
    decides what a failure means), and a blocking pool of 64 connections, so a burst waits (up to the timeout) for a
    connection instead of failing with "too many connections", which would read as Redis being down."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


class RedisState:
    def __init__(self, url: str, *, timeout_s: float) -> None:
        self._redis = pooled_client(url, timeout_s)
        self._url = url
        self._timeout_s = timeout_s
        self._admit = self._redis.register_script(lua.ADMIT)
        self._settle = self._redis.register_script(lua.SETTLE)
        self._take = self._redis.register_script(lua.TAKE)
        self._release = self._redis.register_script(lua.RELEASE)
        self._init_account = self._redis.register_script(lua.INIT_ACCOUNT)
        self._lead = self._redis.register_script(lua.LEAD)
        self._save_if_lead = self._redis.register_script(lua.SAVE_IF_LEAD)
        self.instance = uuid.uuid4().hex
        self.live = 1
        """Processes seen alive at the last heartbeat (this one included)."""
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        """Set once subscribed to the notices channel (cleared while the subscription is down)."""

    async def admit(self, keys: list[str], args: list[Any]) -> list[Any]:
        return await self._run(self._admit, keys, args)

    async def settle(self, keys: list[str], args: list[Any]) -> list[Any]:
        return await self._run(self._settle, keys, args)

    async def take(self, keys: list[str], args: list[Any]) -> list[Any]:
        return await self._run(self._take, keys, args)

    async def release(self, keys: list[str], args: list[Any]) -> None:
        await self._run(self._release, keys, args)

    async def init_account(self, account: str, spent: float, keep_s: int) -> None:
        await self._run(self._init_account, [account], [repr(spent), keep_s])

    async def add_to_hash(self, key: str, fields: dict[str, float]) -> None:
        """Adds each value to the hash's field (HINCRBYFLOAT), in one round trip."""
        with _reached():
            pipe = self._redis.pipeline(transaction=False)
            for name, value in fields.items():
                pipe.hincrbyfloat(key, name, value)
            await pipe.execute()

    async def read_hash(self, key: str) -> dict[str, float]:
        with _reached():
            found: dict[bytes | str, bytes | str] = await self._redis.hgetall(key)
        return {(name.decode() if isinstance(name, bytes) else name): float(value) for name, value in found.items()}

    async def drop_from_hash(self, key: str, fields: list[str]) -> None:
        with _reached():
            await self._redis.hdel(key, *fields)

    async def lead(self, lease_key: str, owner: str, lease_s: float) -> bool:
        """Takes or renews a writer's lease; whether `owner` holds it now."""
        return bool(await self._run(self._lead, [lease_key], [owner, int(lease_s * 1000)]))

    async def save_if_lead(self, lease_key: str, owner: str, key: str, value: bytes) -> None:
        await self._run(self._save_if_lead, [lease_key, key], [owner, value])

    async def read_bytes(self, key: str) -> bytes | None:
        with _reached():
            found: bytes | str | None = await self._redis.get(key)
        return found.encode() if isinstance(found, str) else found

    async def publish(self, channel: str, message: bytes) -> None:
        with _reached():
            await self._redis.publish(channel, message)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> list[Any]:
        with _reached():
            reply: list[Any] = await script(keys=keys, args=args)
        return reply

    # --- background: liveness and notices -------------------------------------------------------------------------

    def start(self, on_message: Callable[[str, bytes], Awaitable[None]]) -> None:
        """Beats every HEARTBEAT_S and hands each message of CHANGES to `on_message`."""
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="state-heartbeat"),
            asyncio.create_task(self._listen_forever(on_message), name="state-listen"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(RedisError, OSError):
            await self._redis.zrem(f"{PREFIX}live", self.instance)
        await self._redis.aclose(close_connection_pool=True)  # a pool given to Redis() is not closed by default

    async def beat(self) -> None:
        """Says this process is alive and counts the others."""
        now = time.time()
        with _reached():
            pipe = self._redis.pipeline(transaction=False)
            pipe.zadd(f"{PREFIX}live", {self.instance: now})
            pipe.zremrangebyscore(f"{PREFIX}live", "-inf", now - 3 * HEARTBEAT_S)
            pipe.zcard(f"{PREFIX}live")
            *_, count = await pipe.execute()
        self.live = max(int(count), 1)

    async def _beat_forever(self) -> None:
        while True:
            with contextlib.suppress(StateUnavailable):  # the limits log the outage; liveness resumes with Redis
                await self.beat()
            await asyncio.sleep(HEARTBEAT_S)

    async def _listen_forever(self, on_message: Callable[[str, bytes], Awaitable[None]]) -> None:
        while True:
            try:
                async for channel, data in self._messages():
                    try:
                        await on_message(channel, data)
                    except Exception:  # a bad notice must not stop the ones after it
                        log.exception("handling a notice on %s failed", channel)
            except (RedisError, OSError) as err:
                log.debug("notices from Redis stopped (%s); listening again in 1 s", err)
            await asyncio.sleep(1.0)

    async def _messages(self) -> AsyncIterator[tuple[str, bytes]]:
        # Its own connection, which blocks on Redis by design (no socket timeout while it waits for a message).
        listener = Redis.from_url(self._url, socket_connect_timeout=self._timeout_s, retry=Retry(NoBackoff(), 0))
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANGES)
            self.listening.set()
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                channel = message["channel"]
                yield channel.decode() if isinstance(channel, bytes) else channel, message["data"]
        finally:
            self.listening.clear()
            await pubsub.aclose()
            await listener.aclose()


@contextlib.contextmanager
def _reached() -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError, TimeoutError) as err:
        raise StateUnavailable(str(err) or type(err).__name__) from None
