"""The key's own rate limits: a request, its estimated tokens and a slot in flight, taken at admission and given
back (the tokens corrected to what the provider billed) when the call ends."""

from __future__ import annotations

from gateway.pipeline.call import Call
from gateway.pipeline.stage import BaseStage
from gateway.policy.key_limits import KeyLimiter


class TakeKeyLimits(BaseStage):
    name = "limits.key"

    def __init__(self, limiter: KeyLimiter) -> None:
        self._limiter = limiter

    def enter(self, call: Call) -> None:
        key = call.key
        assert key is not None
        if key.limits.empty:
            return
        tokens = call.estimate.tokens if call.estimate is not None and key.limits.tpm is not None else 0
        self._limiter.admit(key, tokens)
        call.reserved_tokens = tokens
        call.limits_taken = True

    def exit(self, call: Call, error: BaseException | None) -> None:
        if not call.limits_taken:
            return
        assert call.key is not None
        record = call.record
        used = 0 if record.cache is not None else record.prompt_tokens + record.completion_tokens
        self._limiter.release(call.key, call.reserved_tokens, used)
