"""Scrubbing of the gateway's own output (error messages quoting a request back) through the guardrails' PII module,
the one importer of the Rust scanner.

Upstream error messages often quote the request back ("Invalid value 'jane@example.com'..."), and an error a caller
sees or an operator logs must not carry personal data or keys. Network addresses are left alone: they name the
gateway's own upstreams and help operators.
"""

from __future__ import annotations

from gateway.config.guardrails import PII_KINDS
from gateway.policy.guardrails.pii import redact, scrub

_EVERY_KIND = dict.fromkeys(PII_KINDS, "placeholder")

__all__ = ["redact_text", "scrub"]


def redact_text(text: str) -> str:
    """`text` with every kind of personal data and secret replaced by typed placeholders: audit bodies under the
    `redacted` policy."""
    return redact(text, _EVERY_KIND)[0]
