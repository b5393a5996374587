"""Policy: who may call (authentication, access), and later what may pass (guardrails)."""
