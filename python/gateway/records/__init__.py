"""The plain records every layer shares: keys, teams and budgets (governance), data classifications, the audit
record with its query shapes, batches and their items, and a process's live snapshot. They depend on nothing else in
the gateway, so config, store, ledger and policy all build on them without import cycles."""
