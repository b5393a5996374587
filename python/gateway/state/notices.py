"""Notices between gateway processes: a key, team or budget changed (read the database now), a target's breaker
opened or its provider asked for a rest (skip it too). Each process sends what it learns and applies what the
others send; the periodic database sync stays the fallback for a notice that was lost.

Three transports, by what the processes share: Redis pub/sub (`state.redis_url`), PostgreSQL LISTEN/NOTIFY (a
PostgreSQL database), or, for the processes of one machine on SQLite, Unix datagram sockets in the state folder
(one per process; a notice goes to every socket there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from gateway.state.keyspace import CHANGES, StateUnavailable

if TYPE_CHECKING:
    from gateway.state.redis import RedisState

log = logging.getLogger("gateway.state")

PG_CHANNEL: Final = "gateway_changes"
_MAX_NOTICE_BYTES: Final = 4096

Notice = dict[str, Any]
Handler = Callable[[Notice], Awaitable[None]]


class Notices(Protocol):
    sender: str

    async def send(self, notice: Notice) -> None: ...

    def start(self, handler: Handler) -> None: ...

    async def ready(self, timeout_s: float) -> bool:
        """Waits (at most `timeout_s`) until notices from the others arrive: a notice sent before would be lost."""
        ...

    async def close(self) -> None: ...


_handling: set[asyncio.Task[None]] = set()
"""Notices being handled: referenced until done, so none is collected half way."""


def _handle(sender: str, data: bytes, handler: Handler) -> None:
    task = asyncio.get_running_loop().create_task(_deliver(sender, data, handler))
    _handling.add(task)
    task.add_done_callback(_handling.discard)


async def _within(wait: Awaitable[object], timeout_s: float) -> bool:
    try:
        async with asyncio.timeout(timeout_s):
            await wait
    except TimeoutError:
        return False
    return True


def _encode(sender: str, notice: Notice) -> bytes:
    return orjson.dumps({**notice, "from": sender})


async def _deliver(sender: str, data: bytes, handler: Handler) -> None:
    try:
        notice = orjson.loads(data)
    except orjson.JSONDecodeError:
        log.warning("a notice that is not JSON was ignored")
        return
    if isinstance(notice, dict) and notice.get("from") != sender:
        await handler(notice)


class RedisNotices:
    def __init__(self, state: RedisState) -> None:
        self._state = state
        self.sender = state.instance

    async def send(self, notice: Notice) -> None:
        with contextlib.suppress(StateUnavailable):  # the periodic sync covers a lost notice
            await self._state.publish(CHANGES, _encode(self.sender, notice))

    def start(self, handler: Handler) -> None:
        async def on_message(channel: str, data: bytes) -> None:
            await _deliver(self.sender, data, handler)

        self._state.start(on_message)

    async def ready(self, timeout_s: float) -> bool:
        return await _within(self._state.listening.wait(), timeout_s)

    async def close(self) -> None:
        await self._state.close()


class PostgresNotices:
    """LISTEN/NOTIFY on the database every instance already shares, through asyncpg (its own connection)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.sender = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[None] | None = None
        self._sending: Any = None
        self._listening = asyncio.Event()

    async def ready(self, timeout_s: float) -> bool:
        return await _within(self._listening.wait(), timeout_s)

    async def send(self, notice: Notice) -> None:
        import asyncpg

        try:
            if self._sending is None or self._sending.is_closed():
                self._sending = await asyncpg.connect(self._dsn)
            await self._sending.execute("SELECT pg_notify($1, $2)", PG_CHANNEL, _encode(self.sender, notice).decode())
        except (OSError, asyncpg.PostgresError) as err:
            log.warning("a change notice could not be sent (%s); other instances see it at their next sync", err)
            self._sending = None

    def start(self, handler: Handler) -> None:
        self._task = asyncio.create_task(self._listen_forever(handler), name="notices-listen")
        # The sending connection opens now, not on the first change (a connect costs tens of ms).
        self._opening = asyncio.create_task(self._open(), name="notices-connect")

    async def _open(self) -> None:
        import asyncpg

        with contextlib.suppress(OSError, asyncpg.PostgresError):  # send() tries again
            self._sending = await asyncpg.connect(self._dsn)

    async def _listen_forever(self, handler: Handler) -> None:
        import asyncpg

        loop = asyncio.get_running_loop()
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn)
                lost: asyncio.Future[None] = loop.create_future()

                def on_lost(_conn: Any, lost: asyncio.Future[None] = lost) -> None:
                    if not lost.done():
                        lost.set_result(None)

                def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                    _handle(self.sender, payload.encode(), handler)

                connection.add_termination_listener(on_lost)
                await connection.add_listener(PG_CHANNEL, on_notify)
                self._listening.set()
                await lost
            except (OSError, asyncpg.PostgresError) as err:
                log.debug("listening for change notices stopped (%s); again in 1 s", err)
            finally:
                self._listening.clear()
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._opening is not None:
            await self._opening
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sending is not None:
            await self._sending.close()


class LocalNotices:
    """The processes of one machine, through Unix datagram sockets in `folder`: each binds one, and a notice goes to
    every socket found there (a socket whose process is gone is removed)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self.sender = uuid.uuid4().hex
        self._path = folder / f"{os.getpid()}-{self.sender[:8]}.sock"
        self._socket: socket.socket | None = None

    async def send(self, notice: Notice) -> None:
        data = _encode(self.sender, notice)
        if len(data) > _MAX_NOTICE_BYTES or self._socket is None:
            return
        for path in self._folder.glob("*.sock"):
            if path == self._path:
                continue
            try:
                self._socket.sendto(data, str(path))
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    path.unlink()  # its process is gone
            except BlockingIOError:
                log.debug("notice socket %s is full; that process will see the change at its next sync", path)

    def start(self, handler: Handler) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        sock.setblocking(False)
        self._socket = sock
        loop = asyncio.get_running_loop()

        def on_readable() -> None:
            while True:
                try:
                    data = sock.recv(_MAX_NOTICE_BYTES)
                except BlockingIOError:
                    return
                _handle(self.sender, data, handler)

        loop.add_reader(sock.fileno(), on_readable)

    async def ready(self, timeout_s: float) -> bool:
        return self._socket is not None

    async def close(self) -> None:
        if self._socket is not None:
            asyncio.get_running_loop().remove_reader(self._socket.fileno())
            self._socket.close()
            self._socket = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
