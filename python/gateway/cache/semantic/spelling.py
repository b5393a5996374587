"""Spelling correction before embedding: a misspelt word is replaced by the one dictionary word it is a typo of.

MiniLM's word pieces make a typo cost far more than it should: "how to revrese a strign in pyhton" is at cosine 0.42
to "how to reverse a string in python", below any usable threshold, while verify (typos.py) would accept the pair.
Corrected first, the two are identical. The dictionary is the model's own vocabulary of whole words (~21k), so a word
the model knows is never touched, and both the cached and the asked prompt go through the same correction.

A word is corrected only when it has 5+ letters, is not in the dictionary, and exactly one dictionary word is one slip
away (a typo as typos.py defines it); a plural of a known word ("pandas") is not a typo. ~10-30 us per unknown word,
once: corrections are cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from string import ascii_lowercase
from typing import Final

from gateway.cache.semantic.typos import KEY_NEIGHBOURS, MIN_LETTERS

_WORD: Final = re.compile(rf"[A-Za-z]{{{MIN_LETTERS},}}")


class SpellingCorrector:
    """Corrects typos of dictionary words in a text; everything else (case, punctuation, other words) is kept."""

    def __init__(self, dictionary: Iterable[str]) -> None:
        self._words = frozenset(w for w in dictionary if w.isascii() and w.isalpha() and w.islower())
        self._correct_word = lru_cache(maxsize=65536)(self._correction)

    def __len__(self) -> int:
        return len(self._words)

    def correct(self, text: str) -> str:
        return _WORD.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        word = match.group()
        fixed = self._correct_word(word.lower())
        if fixed is None:
            return word
        return fixed.capitalize() if word[0].isupper() else fixed

    def _correction(self, word: str) -> str | None:
        if word in self._words or (word.endswith("s") and word[:-1] in self._words):
            return None
        # A letter dropped, added or swapped is likelier than a neighbouring key: those are tried first.
        for candidates in (_dropped_added_or_swapped(word), _neighbouring_key(word)):
            found = candidates & self._words
            if found:
                return found.pop() if len(found) == 1 else None
        return None


def _dropped_added_or_swapped(word: str) -> set[str]:
    """Words one slip from `word`, its first letter kept: a letter dropped, added, or swapped with the next."""
    out = {word[:i] + word[i + 1 :] for i in range(1, len(word))}
    out.update(word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(1, len(word) - 1))
    out.update(word[:i] + letter + word[i:] for i in range(1, len(word) + 1) for letter in ascii_lowercase)
    out.discard(word)
    return out


def _neighbouring_key(word: str) -> set[str]:
    return {word[:i] + key + word[i + 1 :] for i in range(1, len(word)) for key in KEY_NEIGHBOURS.get(word[i], ())}
