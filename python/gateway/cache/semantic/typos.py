"""Whether one word is a typo of another: the slips people make, not every word one edit away.

Accepted, between words of 5+ letters that start with the same letter: one transposition of neighbours (pyhton),
one letter missing or doubled or added (pythn, pythonn), or one letter replaced by a key next to it on a QWERTY
keyboard (pytjon). Rejected: real words one edit apart that a reader would not take for a slip of the finger, such
as getter/setter (first letter), insert/invert and remove/remote (s-v and v-t are not neighbours), light/night.

The edit distances come from rapidfuzz (C++): the optimal-string-alignment distance counts a swap of neighbours as
one edit, Levenshtein's does not, which tells a swap from a replaced letter.
"""

from __future__ import annotations

from typing import Final

from rapidfuzz.distance import OSA, Levenshtein

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
    if OSA.distance(word, other, score_cutoff=1) > 1:
        return False
    if len(word) != len(other) or Levenshtein.distance(word, other, score_cutoff=1) > 1:
        return True  # a letter missing or added, or two neighbours swapped
    (replaced,) = Levenshtein.editops(word, other)
    return other[replaced.dest_pos] in KEY_NEIGHBOURS.get(word[replaced.src_pos], frozenset())
