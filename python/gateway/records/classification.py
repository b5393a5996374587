"""Data classification: how sensitive a request is, from least to most. Keys carry the highest they may send;
guardrail findings and key labels raise a request's level; residency policies are written per level."""

from __future__ import annotations

from enum import IntEnum


class Classification(IntEnum):
    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        """The lowercase name used in config, metadata, audit records and messages."""
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Classification:
        try:
            return cls[label.strip().upper()]
        except KeyError:
            valid = ", ".join(c.label for c in cls)
            raise ValueError(f"unknown data classification {label!r}; valid: {valid}") from None
