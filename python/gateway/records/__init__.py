"""The plain records every layer shares: keys, teams and budgets (governance), data classifications, and the audit
record with its query shapes. They depend on nothing else in the gateway, so config, store, ledger and policy all
build on them without import cycles."""
