"""Budgets on keys and teams: a passed soft cap sends calls to a cheaper model (hard caps are held by the limits
stage, with the key's rate limits, all or none)."""

from __future__ import annotations

from gateway.ledger.budgets import BudgetBook
from gateway.pipeline.call import ChatCall
from gateway.pipeline.stage import BaseStage


class DowngradeOnBudget(BaseStage):
    name = "budget.downgrade"

    def __init__(self, budgets: BudgetBook) -> None:
        self._budgets = budgets

    def enter(self, call: ChatCall) -> None:
        key = call.key
        assert key is not None
        if not self._budgets.governs(key):
            return
        cheaper = self._budgets.downgrade(key)
        if cheaper is not None and cheaper != call.request.model:
            call.record.guardrails.append({"type": "budget", "kind": "soft_cap", "action": "downgrade", "count": 1})
            call.request.model = cheaper
