"""Each item of a batch billed once: its answer through the team's output guardrails, its cost at the batch prices,
its audit record (and ledger entry) committed in the period in which it completes, and its share of the batch's
budget reservation settled.

Exactly once, across crashes: an item's outcome is recorded first, by a conditional update only one process can
win (store/batches.py `settle`); the winner commits the item's audit record and then marks the item billed. A
process that finds an item with an outcome but not billed (a crash in between) looks for its audit record by its
request id, fixed when the batch was stored, and writes it only if it is missing. The audit log must be on for this
check (audit.enabled, the default); without it a crash in that window can bill an item twice."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

from gateway.batches.adapters.base import RemoteResult
from gateway.batches.bodies import loaded
from gateway.chat import ChatResult, Usage
from gateway.errors import GatewayError
from gateway.ledger.audit import AuditLog
from gateway.ledger.cost import batch_cost_usd
from gateway.observe.metrics import GatewayMetrics
from gateway.pipeline.stages.audit import body_text, request_body
from gateway.policy.keyring import KeyRing
from gateway.policy.team_policies import TeamPolicies, action_records
from gateway.records.audit import BATCH_KIND, AuditRecord
from gateway.records.batches import BatchJob, ItemError, ItemState, Step, StoredItem
from gateway.records.governance import BodyPolicy, Team
from gateway.routing.catalog import Target
from gateway.state.admission import LocalLimits, SharedLimits
from gateway.store.batches import BatchStore
from gateway.tokens import TokenCounter


class BatchBilling:
    def __init__(
        self,
        store: BatchStore,
        audit: AuditLog,
        limits: LocalLimits | SharedLimits,
        ring: KeyRing,
        policies: TeamPolicies,
        teams: dict[str, Team],
        counter: TokenCounter,
        *,
        audit_enabled: bool,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._store = store
        self._audit = audit
        self._limits = limits
        self._budgets = limits.budgets
        self._ring = ring
        self._policies = policies
        self._teams = teams
        self._counter = counter
        self._audit_enabled = audit_enabled
        self._metrics = metrics

    # --- reservations: the admission's book (this process's, or Redis's with shared limits) ----------------------

    async def reserve(self, batch_id: str, key_id: str, estimate_usd: float) -> None:
        """The whole batch, at its estimate; RESOURCE_EXHAUSTED (BUDGET_EXCEEDED, with the amounts) past a hard cap."""
        key = self._ring.get(key_id)
        if key is not None:
            await self._limits.reserve_batch(batch_id, key, estimate_usd)

    async def take_back(self, job: BatchJob) -> None:
        """Each round on a batch: its reservation held (after a restart or a takeover: its pending items' estimates,
        without a cap check, since the batch was admitted under the caps)."""
        key = self._ring.get(job.key_id)
        if key is None or not self._budgets.governs(key):
            return

        async def pending_usd() -> float:
            return sum(item.estimate_usd for item in await self._store.items(job.id, state=ItemState.PENDING))

        await self._limits.hold_batch(job.id, key, pending_usd)

    async def drop_ended(self) -> None:
        """Gives back what this process holds for batches that ended in another process (a --workers sibling, another
        instance, took them over)."""
        for batch_id in self._limits.held_batches():
            job = await self._store.job(batch_id)  # batches are never deleted
            if job is not None and job.step is Step.ENDED:
                await self.release(batch_id, job.key_id)

    async def release(self, batch_id: str, key_id: str) -> None:
        """The batch ended: whatever is still held (items settled elsewhere) is given back."""
        key = self._ring.get(key_id)
        if key is not None:
            await self._limits.release_batch(batch_id, key)

    # --- outcomes ---------------------------------------------------------------------------------------------------

    def outcome(self, job: BatchJob, item: StoredItem, target: Target, remote: RemoteResult) -> StoredItem:
        """The item with its provider's outcome, the output guardrails applied and its cost at the batch prices."""
        settled = dataclasses.replace(item, settled_at=time.time(), guardrails=list(item.guardrails))
        if remote.answer is None:
            return failed(settled, remote.error or ItemError("INTERNAL", "INTERNAL", "no outcome"))
        result = remote.answer
        guard = self._policies.for_team(job.team).output
        if guard is not None:
            try:
                checked = guard.check_result(result)
            except GatewayError as err:
                return failed(settled, ItemError(err.kind.value, err.reason, err.message))
            settled.guardrails.extend(action_records(checked.actions))
        usage = result.usage or self._counted(item, result, target)
        settled.state = ItemState.SUCCEEDED
        settled.cost_usd = batch_cost_usd(usage, target.model)
        settled.outcome = answer_outcome(result, usage, target)
        return settled

    def _counted(self, item: StoredItem, result: ChatResult, target: Target) -> Usage:
        """The gateway's own count, for an answer whose provider reported no usage."""
        model = target.model
        request = loaded(item.body)
        prompt = self._counter.count_chat(request.messages, model.upstream, model.tokenizer).tokens
        return Usage(prompt, self._counter.count_text(result.text, model.upstream, model.tokenizer).tokens)

    async def settle(self, job: BatchJob, items: Iterable[StoredItem], *, audited: bool = False) -> list[StoredItem]:
        """Records each item's outcome where no other process has, then bills those: their audit records committed,
        their budget shares settled. `audited`: the items' records were written already (an item sent again on its
        own went through the whole pipeline). Returns the items this call settled."""
        won = [item for item in items if await self._store.settle(item)]
        if not won:
            return won
        if not audited:
            await self._commit([self.record(job, item) for item in won])
        key = self._ring.get(job.key_id)
        if key is not None and self._budgets.governs(key):
            for item in won:
                # An item sent again on its own was billed by its own call's admission: its share here costs nothing.
                cost = 0.0 if audited else item.cost_usd
                await self._limits.settle_batch_share(job.id, key, item.estimate_usd, cost)
        await self._store.mark_billed(job.id, [item.custom_id for item in won])
        if self._metrics is not None:
            for item in won:
                error = (item.outcome or {}).get("error") or {}
                # An item sent again on its own counted its cost with the Chat calls' series.
                cost = 0.0 if audited else item.cost_usd
                code = str(error.get("code") or "OK")
                self._metrics.observe_batch_item(
                    provider=job.provider, model=job.served_model, code=code, cost_usd=cost
                )
        return won

    async def bill_unbilled(self, job: BatchJob) -> None:
        """Items a crash left with an outcome but not billed: their records written unless the audit log has them."""
        unbilled = await self._store.unbilled(job.id)
        if not unbilled:
            return
        have = await self._store.audited([item.request_id for item in unbilled])
        missing = [item for item in unbilled if item.request_id not in have]
        if missing:
            await self._commit([self.record(job, item) for item in missing])
        await self._store.mark_billed(job.id, [item.custom_id for item in unbilled])

    async def _commit(self, records: list[AuditRecord]) -> None:
        for record in records:
            self._audit.submit(record)
        await self._audit.flush()

    def record(self, job: BatchJob, item: StoredItem) -> AuditRecord:
        """The item's audit record (and so its ledger entry), at the time its outcome arrived."""
        at = item.settled_at or time.time()
        outcome = item.outcome or {}
        usage = outcome.get("usage") or {}
        error = outcome.get("error") or {}
        record = AuditRecord(
            request_id=item.request_id,
            at=at,
            key_id=job.key_id,
            team=job.team,
            kind=BATCH_KIND,
            model=job.model,
            route=job.model if job.model != job.served_model else "",
            served_model=job.served_model if item.state is ItemState.SUCCEEDED else "",
            provider=job.provider if item.state is ItemState.SUCCEEDED else "",
            status=str(error.get("code") or "OK"),
            reason=str(error.get("reason") or ""),
            error=str(error.get("message") or ""),
            latency_ms=(at - job.created_at) * 1000,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            cached_tokens=int(usage.get("cached_prompt_tokens") or 0),
            cost_usd=item.cost_usd,
            guardrails=list(item.guardrails),
            classification=item.classification,
            batch_id=job.id,
        )
        team = self._teams.get(job.team)
        policy = team.bodies if team is not None else BodyPolicy.NONE
        if self._audit_enabled and policy is not BodyPolicy.NONE:
            record.request_body = request_body(loaded(item.body), policy)
            if "text" in outcome:
                record.response_body = body_text(str(outcome["text"]), policy)
        return record


def failed(item: StoredItem, error: ItemError) -> StoredItem:
    item.state = ItemState.FAILED
    item.cost_usd = 0.0
    item.outcome = {"error": error.as_dict()}
    return item


def answer_outcome(result: ChatResult, usage: Usage, target: Target) -> dict[str, object]:
    """An answer as an item's outcome is stored (and BatchResults sends it)."""
    return {
        "text": result.text,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments_json} for c in result.tool_calls],
        "finish_reason": result.finish_reason,
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
        },
        "model": target.model.name,
        "provider": target.provider.name,
        "upstream_model": result.upstream_model,
    }
