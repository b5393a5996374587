"""The stages of a call, one module per concern. Each is a thin adapter: the decision it applies lives in the
concern's own package (policy, ledger, routing, cache, observe), which knows nothing of the pipeline."""
