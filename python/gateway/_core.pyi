"""Typed stubs for the Rust extension `gateway._core` (checked by `python -m mypy.stubtest gateway._core`)."""

from collections.abc import Mapping, Sequence
from typing import Literal, final

__version__: str

class CoreError(Exception): ...

# --- PII scanning (rust/src/pii.rs, rust/src/py/pii.rs) ------------------------------------------------------------

PiiKind = Literal[
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "DATE_OF_BIRTH",
    "SECRET",
]
RedactionMode = Literal["mask", "placeholder", "hash"]
PII_STREAM_HOLD_CHARS: int
"""Characters a stream redactor holds back (more only while a word, key or private-key block is still arriving)."""

@final
class PiiMatch:
    """One detected item: character offsets into the scanned str, the entity name and a score in [0, 1]."""

    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def kind(self) -> PiiKind: ...
    @property
    def score(self) -> float: ...
    @property
    def text(self) -> str: ...

@final
class PiiScanner:
    """Finds PII and secrets. `kinds` restricts what is reported; matches under `min_score` are dropped."""

    def __new__(cls, min_score: float = 0.5, kinds: Sequence[str] | None = None) -> PiiScanner: ...
    @property
    def min_score(self) -> float: ...
    @property
    def kinds(self) -> list[PiiKind]: ...
    def scan(self, text: str) -> list[PiiMatch]: ...
    def scan_batch(self, texts: Sequence[str]) -> list[list[PiiMatch]]: ...
    def redact(
        self,
        text: str,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
    ) -> tuple[str, dict[str, str]]:
        """Return the redacted text and placeholder -> original. `mode` is one mode (default "placeholder") for
        `kinds` (all when None), or a dict kind -> mode. Pass an earlier `mapping` to continue its numbering."""

    @staticmethod
    def restore(text: str, mapping: Mapping[str, str]) -> str: ...
    def stream(
        self,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        restore: bool = False,
    ) -> PiiStreamRedactor: ...

@final
class PiiStreamRedactor:
    """Redacts streamed text: `push` returns what is safe to release (holding back at most a small window),
    `finish` flushes the rest. `mode`/`kinds` as for `PiiScanner.redact`; `mapping` continues earlier placeholders;
    `restore=True` puts the originals of `mapping`'s placeholders back in the released text, after the answer's own
    items are redacted (the answer side of a redacted prompt)."""

    def __new__(
        cls,
        scanner: PiiScanner | None = None,
        mode: RedactionMode | str | Mapping[str, str] | None = None,
        kinds: Sequence[str] | None = None,
        mapping: Mapping[str, str] | None = None,
        restore: bool = False,
    ) -> PiiStreamRedactor: ...
    def push(self, chunk: str) -> str: ...
    def feed(self, chunk: str) -> str:
        """Same as `push`."""

    def finish(self) -> str: ...
    @property
    def mapping(self) -> dict[str, str]: ...
    @property
    def found(self) -> dict[str, int]: ...
    @property
    def held(self) -> int: ...
