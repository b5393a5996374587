"""Provider quotas: requests and tokens per minute and calls in flight that a deployment's account allows. The
gateway keeps under them itself, so a busy target is skipped or waited for instead of earning 429s."""

from __future__ import annotations

from gateway.limits import LimitKeeper
from gateway.routing.catalog import Target


class Quotas:
    def __init__(self, keeper: LimitKeeper | None = None) -> None:
        self._keeper = keeper or LimitKeeper()

    def take(self, target: Target, tokens: int) -> float:
        """Takes one request, `tokens` and a slot from the target's quota, all or none. Returns 0.0 when taken (pair
        with `settle` or `give_back`), else the seconds until the quota would admit."""
        quota = target.model.quota
        if quota is None:
            return 0.0
        refusal = self._keeper.take(target.key, quota, tokens)
        return 0.0 if refusal is None else refusal.wait_s

    def give_back(self, target: Target, tokens: int) -> None:
        """Undoes a `take` whose call never went out."""
        if target.model.quota is not None:
            self._keeper.give_back(target.key, target.model.quota, tokens)

    def settle(self, target: Target, reserved_tokens: int, used_tokens: int) -> None:
        """Ends a call that went out: frees its slot and corrects its token take to what the provider billed."""
        if target.model.quota is not None:
            self._keeper.settle(target.key, target.model.quota, reserved_tokens, used_tokens)
