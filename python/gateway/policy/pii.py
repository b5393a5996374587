"""PII and secret detection for the gateway's own output: the only importer of gateway._core's PII scanner.

Upstream error messages often quote the request back ("Invalid value 'jane@example.com'..."), and an error a caller
sees or an operator logs must not carry personal data or keys. Network addresses are left alone: they name the
gateway's own upstreams and help operators.
"""

from __future__ import annotations

from gateway._core import PiiScanner

_KINDS = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "DATE_OF_BIRTH", "SECRET"]
_SCANNER = PiiScanner(kinds=_KINDS)


def scrub(text: str) -> str:
    """`text` with personal data and secrets replaced by typed placeholders such as <EMAIL_1>."""
    redacted, _ = _SCANNER.redact(text)
    return redacted


_ALL_KINDS_SCANNER = PiiScanner()


def redact_text(text: str) -> str:
    """`text` with every kind of personal data and secret replaced by typed placeholders: audit bodies under the
    `redacted` policy."""
    redacted, _ = _ALL_KINDS_SCANNER.redact(text)
    return redacted
