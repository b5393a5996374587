"""How the CLI prints: aligned tables for people, indented JSON for machines."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: object) -> None:
    """Prints a value as JSON; protobuf messages (alone or in a list) by their proto field names."""
    if isinstance(value, Message):
        value = to_dict(value)
    elif isinstance(value, list):
        value = [to_dict(v) if isinstance(v, Message) else v for v in value]
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
