"""The ledger: what each call used and cost."""
