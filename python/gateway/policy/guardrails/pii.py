"""PII and secret detection: the only Python importer of gateway._core's PII scanner.

The guardrails (input redaction, output scanning, classification) and the error-message scrubber all go through
here, so one compiled scanner serves the process and the mapping from policy actions to core redaction modes lives in
one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from gateway._core import PII_STREAM_HOLD_CHARS, PiiMatch, PiiScanner, PiiStreamRedactor
from gateway.config.guardrails import PiiAction

__all__ = [
    "PII_STREAM_HOLD_CHARS",
    "PiiMatch",
    "PiiStreamRedactor",
    "count_kinds",
    "find",
    "find_many",
    "redact",
    "redaction_modes",
    "restore",
    "scrub",
    "stream",
]

_SCANNER = PiiScanner()
# Error messages keep network addresses: they name the gateway's own upstreams and help operators.
_SCRUB_SCANNER = PiiScanner(
    kinds=["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "DATE_OF_BIRTH", "SECRET"]
)
_MODES: Mapping[PiiAction, str] = {
    PiiAction.REDACT: "placeholder",
    PiiAction.MASK: "mask",
    # A blocked kind is also hidden: an output stream has released the text before it, not the item itself.
    PiiAction.BLOCK: "placeholder",
}


def redaction_modes(actions: Mapping[str, PiiAction]) -> dict[str, str]:
    """Entity type -> core redaction mode for every type whose action is not `allow`."""
    return {kind: _MODES[action] for kind, action in actions.items() if action is not PiiAction.ALLOW}


def find(text: str) -> list[PiiMatch]:
    """Every item found, sorted by start, with character offsets."""
    return _SCANNER.scan(text)


def find_many(texts: Sequence[str]) -> list[list[PiiMatch]]:
    """`find` over several texts in one call into the core (large batches use every core)."""
    return _SCANNER.scan_batch(texts)


def count_kinds(matches: Sequence[PiiMatch]) -> Counter[str]:
    return Counter(match.kind for match in matches)


def redact(text: str, modes: Mapping[str, str], mapping: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """`text` with the items of `modes`' kinds replaced, and placeholder -> original including `mapping`'s entries
    (pass the mapping of an earlier text of the same request to continue its numbering)."""
    return _SCANNER.redact(text, mode=dict(modes), mapping=mapping)


def restore(text: str, mapping: Mapping[str, str]) -> str:
    """Originals back in place of the placeholders of `mapping`."""
    return PiiScanner.restore(text, mapping)


def stream(
    modes: Mapping[str, str], mapping: Mapping[str, str] | None = None, *, restore: bool = False
) -> PiiStreamRedactor:
    """A stream redactor for `modes`; with `restore`, `mapping`'s placeholders are put back in what it releases."""
    return _SCANNER.stream(mode=dict(modes), mapping=mapping, restore=restore)


def scrub(text: str) -> str:
    """`text` with personal data and secrets replaced by typed placeholders such as <EMAIL_1>: for error messages."""
    redacted, _ = _SCRUB_SCANNER.redact(text)
    return redacted
