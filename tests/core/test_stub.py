"""The stub's Literal aliases, which exist only for type checkers, list exactly what gateway._core exports."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway
from gateway import _core

STUB = Path(gateway.__file__).with_name("_core.pyi")


def stub_literal(alias: str) -> tuple[str, ...]:
    """The values of `alias = Literal[...]` in the stub, in order."""
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == [alias]:
            assert isinstance(node.value, ast.Subscript)
            values = node.value.slice
            elements = values.elts if isinstance(values, ast.Tuple) else [values]
            return tuple(ast.literal_eval(element) for element in elements)
    raise AssertionError(f"{alias} is not a Literal alias in {STUB}")


def test_pii_kind_lists_the_exported_kinds() -> None:
    assert isinstance(_core.PII_KINDS, tuple)
    assert stub_literal("PiiKind") == _core.PII_KINDS


def test_encoding_name_lists_the_exported_encodings() -> None:
    assert stub_literal("EncodingName") == tuple(_core.ENCODINGS)
