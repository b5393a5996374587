"""gateway._core.key_digest through the public API: the hex SHA-256 the store has always kept (hashlib's), so keys
issued before it still authenticate."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway._core import key_digest


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"])))
def test_the_digest_is_hashlibs_sha256_of_the_utf8_bytes(key: str) -> None:
    assert key_digest(key) == hashlib.sha256(key.encode()).hexdigest()


def test_a_key_that_is_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        key_digest(b"gw-bytes")  # type: ignore[arg-type]
