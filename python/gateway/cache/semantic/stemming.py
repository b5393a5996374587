"""Stems per language, so "sorted", "sorting" and "sorts" compare as "sort", and "installation" as "install".

The Snowball stemmers (M. F. Porter's successors to his 1980 algorithm) through PyStemmer, their C build: one
stemmer per language verify reads ("en", "fr", "de", "es"), where the hand-written English Porter stemmer this
replaced cut French and German words by English suffix rules. What matters is that one word is stemmed the same way in
both prompts; a prompt's language is the one `prompt_facts` detects from its function words.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Final

import Stemmer  # type: ignore[import-not-found]  # PyStemmer ships no stubs

_SNOWBALL: Final = {"en": "english", "fr": "french", "de": "german", "es": "spanish", "pt": "portuguese"}
LANGUAGES: Final = frozenset(_SNOWBALL)


@cache
def _stemmer(language: str) -> Stemmer.Stemmer:
    return Stemmer.Stemmer(_SNOWBALL[language])


@lru_cache(maxsize=65536)
def stem(word: str, language: str = "en") -> str:
    """The stem of a lower-case word in `language` (a key of LANGUAGES); words of 2 letters or fewer, and anything not
    purely alphabetic, unchanged."""
    if len(word) <= 2 or not word.isalpha():
        return word
    return str(_stemmer(language).stemWord(word))
