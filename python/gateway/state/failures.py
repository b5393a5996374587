"""Failed authentications counted across every process: an address that fails too often, wherever it tries, is
refused by all of them. Each process counts its own failures at once (the key ring), and also adds them to the shared
count in Redis in the background; the process that finds the address over its allowance blocks it and tells the
others, which block it too."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

from gateway.state.keyspace import StateUnavailable, tag
from gateway.state.notices import Notice, Notices

if TYPE_CHECKING:
    from gateway.policy.keyring import KeyRing
    from gateway.state.redis import RedisState

AUTH_BLOCK_NOTICE: Final = "auth_block"


class SharedFailures:
    def __init__(self, state: RedisState, notices: Notices, ring: KeyRing) -> None:
        self._state = state
        self._notices = notices
        self._ring = ring
        self._counting: set[asyncio.Task[None]] = set()

    def report(self, host: str) -> None:
        task = asyncio.get_running_loop().create_task(self._count(host))
        self._counting.add(task)
        task.add_done_callback(self._counting.discard)

    async def _count(self, host: str) -> None:
        policy = self._ring.failures
        keys = [f"{tag('a', host)}rpm", f"{tag('a', host)}tpm", f"{tag('a', host)}slots"]
        with contextlib.suppress(StateUnavailable):  # each process still keeps its own count
            reply = await self._state.take(keys, ["", policy.per_minute, 1, 0, 0, 0, 0])
            if int(reply[0]) != 0:
                seconds = max(float(reply[2].decode() if isinstance(reply[2], bytes) else reply[2]), 1.0)
                self._ring.block(host, seconds)
                await self._notices.send({"kind": AUTH_BLOCK_NOTICE, "host": host, "s": seconds})

    def apply(self, notice: Notice) -> None:
        """Another process blocked an address."""
        self._ring.block(str(notice.get("host")), float(notice.get("s") or 1.0))
