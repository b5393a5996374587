"""gateway._core's exceptions: each refusal of the core is a CoreError and the builtin a caller expects for it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from gateway import _core
from gateway._core import CoreError, InvalidArgumentError, Limit, PiiScanner, StorageError, VectorIndex


def test_the_classes_have_both_bases() -> None:
    assert issubclass(InvalidArgumentError, CoreError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(StorageError, CoreError)
    assert issubclass(StorageError, OSError)
    assert InvalidArgumentError.__module__ == StorageError.__module__ == "gateway._core"


@pytest.mark.parametrize(
    "call",
    [
        lambda: _core.count_tokens("hi", "no_such_encoding"),  # refused by the core
        lambda: _core.count_tokens_batch("one str", "o200k_base"),  # refused by the binding
        lambda: _core.encode("hi", "o200k_base", allowed_special="some"),
        lambda: Limit(0.0, 1.0),
        lambda: PiiScanner(kinds=["NOT_A_KIND"]),
        lambda: PiiScanner().redact("x", mode="shred"),
        lambda: VectorIndex(4).insert("ns", 1, [0.0, 0.0, 0.0, 0.0]),
        lambda: VectorIndex(4).insert("ns", 1, "not a vector"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_invalid_argument_error(call: object) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        call()  # type: ignore[operator]
    assert isinstance(caught.value, CoreError)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value), "the message says how to fix the call"


def test_an_unreadable_file_raises_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot read") as caught:
        VectorIndex.load(tmp_path / "missing.idx")
    assert isinstance(caught.value, OSError)
    with pytest.raises(CoreError):
        VectorIndex(4).save(tmp_path / "no-such-dir" / "x.idx")


def test_errors_pickle_by_name() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Limit(0.0, 1.0)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is InvalidArgumentError
    assert again.args == caught.value.args
