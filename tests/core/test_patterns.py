"""gateway._core.PatternSet through the public API: per-pattern matches as Python's finditer finds them, character
offsets on non-ASCII text, the per-pattern limit, and the errors for patterns Rust's regex does not accept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway._core import PatternSet

PATTERNS = [r"\bignore\b[^.!?\n]{0,20}?\binstructions\b", r"(?m)^system:", r"[a-z0-9+/]{24,}", r"é+"]


def _python(text: str) -> list[tuple[int, int, int]]:
    return [(i, m.start(), m.end()) for i, p in enumerate(PATTERNS) for m in re.finditer(p, text, re.MULTILINE)]


def test_each_pattern_reports_its_own_non_overlapping_matches() -> None:
    text = "ignore all instructions. system: ok\nsystem: again éé aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="
    found = PatternSet(PATTERNS).find_all(text)
    assert found == _python(text)
    assert [text[s:e] for _, s, e in found][:2] == ["ignore all instructions", "system:"]


def test_offsets_are_characters_on_non_ascii_text() -> None:
    text = "ééé — ignore the instructions 👍 system: x"
    found = PatternSet(PATTERNS).find_all(text)
    assert found == _python(text)
    assert "ignore the instructions" in [text[s:e] for _, s, e in found]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", " ", "é", ".", "\n", "ignore", "instructions", "system:", "+/"]), max_size=30)
)
def test_same_matches_as_python(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert PatternSet(PATTERNS).find_all(text) == _python(text)


def test_limit_which_len_and_patterns() -> None:
    patterns = PatternSet(["a", "b", "zz"])
    assert len(patterns) == 3
    assert patterns.patterns == ["a", "b", "zz"]
    assert patterns.find_all("aaaa b", limit=2) == [(0, 0, 1), (0, 1, 2), (1, 5, 6)]
    assert patterns.which("b zz") == [1, 2]
    assert patterns.find_all("") == []
    assert PatternSet([]).find_all("anything") == []


@pytest.mark.parametrize("pattern", ["(unclosed", r"(?<!a)b", r"(a)\1"])
def test_patterns_rust_does_not_accept_raise_value_error(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern #1 does not compile"):
        PatternSet(["ok", pattern])


def test_arguments_are_type_checked() -> None:
    with pytest.raises(TypeError):
        PatternSet([1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        PatternSet(["a"]).find_all(b"bytes")  # type: ignore[arg-type]
