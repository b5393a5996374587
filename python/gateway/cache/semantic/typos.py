"""Whether one word is a typo of another: the slips people make, not every word one edit away.

Accepted, between words of 5+ letters that start with the same letter: one transposition of neighbours (pyhton),
one letter missing or doubled or added (pythn, pythonn), or one letter replaced by a key next to it on a QWERTY
keyboard (pytjon). Rejected: real words one edit apart that a reader would not take for a slip of the finger, such
as getter/setter (first letter), insert/invert and remove/remote (s-v and v-t are not neighbours), light/night.
"""

from __future__ import annotations

from typing import Final

MIN_LETTERS: Final = 5

_ROWS: Final = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _neighbours() -> dict[str, frozenset[str]]:
    position = {ch: (r, c) for r, row in enumerate(_ROWS) for c, ch in enumerate(row)}
    near: dict[str, set[str]] = {ch: set() for ch in position}
    for ch, (r, c) in position.items():
        for other, (r2, c2) in position.items():
            # Rows are staggered by about half a key: the row below touches columns c-1 and c, above c and c+1.
            if other != ch and (
                (r2 == r and abs(c2 - c) == 1)
                or (r2 == r + 1 and c2 in (c - 1, c))
                or (r2 == r - 1 and c2 in (c, c + 1))
            ):
                near[ch].add(other)
    return {ch: frozenset(others) for ch, others in near.items()}


KEY_NEIGHBOURS: Final = _neighbours()


def is_typo_of(word: str, other: str) -> bool:
    """True when `word` and `other` differ by one slip of the kind described above (False when equal)."""
    if word == other or min(len(word), len(other)) < MIN_LETTERS or word[0] != other[0]:
        return False
    if len(word) == len(other):
        return _one_swap_or_near_key(word, other)
    if abs(len(word) - len(other)) == 1:
        short, long_ = (word, other) if len(word) < len(other) else (other, word)
        return _one_letter_more(short, long_)
    return False


def _one_swap_or_near_key(a: str, b: str) -> bool:
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        i = diff[0]
        return b[i] in KEY_NEIGHBOURS.get(a[i], frozenset())
    if len(diff) == 2:
        i, j = diff
        return j == i + 1 and a[i] == b[j] and a[j] == b[i]
    return False


def _one_letter_more(short: str, long_: str) -> bool:
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]
