"""Provider quotas: requests and tokens per minute and calls in flight that a deployment's account allows. The
gateway keeps under them itself, so a busy target is skipped or waited for instead of earning 429s.

Kept in this process, or (with `state.redis_url`) shared by every worker and instance through Redis: one round trip
per attempt to take, one to give back, so the processes together stay under the account's quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from gateway.limits import LimitKeeper
from gateway.routing.catalog import Target
from gateway.state.keyspace import StateUnavailable, tag

if TYPE_CHECKING:
    from gateway.state.redis import RedisState

log = logging.getLogger("gateway.routing")


class Quotas:
    def __init__(self, keeper: LimitKeeper | None = None) -> None:
        self._keeper = keeper or LimitKeeper()

    async def take(self, target: Target, tokens: int, slot: str) -> float:
        """Takes one request, `tokens` and a slot (named `slot`, unique to the attempt) from the target's quota, all
        or none. Returns 0.0 when taken (pair with `settle` or `give_back`), else the seconds until it would admit."""
        quota = target.model.quota
        if quota is None:
            return 0.0
        refusal = self._keeper.take(target.key, quota, tokens)
        return 0.0 if refusal is None else refusal.wait_s

    def give_back(self, target: Target, tokens: int, slot: str) -> None:
        """Undoes a `take` whose call never went out."""
        if target.model.quota is not None:
            self._keeper.give_back(target.key, target.model.quota, tokens)

    def settle(self, target: Target, reserved_tokens: int, used_tokens: int, slot: str) -> None:
        """Ends a call that went out: frees its slot and corrects its token take to what the provider billed."""
        if target.model.quota is not None:
            self._keeper.settle(target.key, target.model.quota, reserved_tokens, used_tokens)


class SharedQuotas(Quotas):
    """The quotas in Redis. A Redis that fails or is slow falls back to this process's own count (a provider's 429,
    which the executor honours, is the last line)."""

    def __init__(self, state: RedisState, keeper: LimitKeeper | None = None) -> None:
        super().__init__(keeper)
        self._state = state
        self._settling: set[asyncio.Task[None]] = set()

    async def take(self, target: Target, tokens: int, slot: str) -> float:
        quota = target.model.quota
        if quota is None:
            return 0.0
        try:
            reply = await self._state.take(
                _keys(target),
                [slot, quota.rpm or 0, 1, quota.tpm or 0, tokens, quota.max_concurrent or 0, 900],
            )
        except StateUnavailable as err:
            log.warning("provider quotas: Redis failed (%s); this process counts alone", err)
            return await super().take(target, tokens, slot)
        return 0.0 if int(reply[0]) == 0 else float(_text(reply[2]))

    def give_back(self, target: Target, tokens: int, slot: str) -> None:
        self.settle(target, tokens, 0, slot)

    def settle(self, target: Target, reserved_tokens: int, used_tokens: int, slot: str) -> None:
        quota = target.model.quota
        if quota is None:
            return
        task = asyncio.get_running_loop().create_task(self._release(target, reserved_tokens, used_tokens, slot))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _release(self, target: Target, reserved_tokens: int, used_tokens: int, slot: str) -> None:
        quota = target.model.quota
        assert quota is not None
        with contextlib.suppress(StateUnavailable):  # the slot's lease expires by itself
            await self._state.release(_keys(target)[1:], [slot, quota.tpm or 0, reserved_tokens, used_tokens])


def _keys(target: Target) -> list[str]:
    prefix = f"{tag('q', target.key)}"
    return [f"{prefix}rpm", f"{prefix}tpm", f"{prefix}slots"]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
