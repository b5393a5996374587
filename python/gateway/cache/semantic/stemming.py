"""A Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", 1980), so "sorted", "sorting" and "sorts"
compare as "sort", and "installation" as "install".

Written out here (about a hundred lines) rather than taken from a package: verify needs only this and the cache
should not grow a dependency for it. Non-English words go through it too; what matters is that the same word is
stemmed the same way in both prompts, and plurals lose their -s in French and Spanish as well.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

_STEP2: Final = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"), ("bli", "ble"),
    ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"),
    ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"),
    ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"), ("isation", "ize"), ("iser", "ize"),
)  # fmt: skip
_STEP3: Final = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("alise", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
    ("ness", ""),
)  # fmt: skip
_STEP4: Final = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate",
    "iti", "ous", "ive", "ize", "ise",
)  # fmt: skip


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The stem of a lower-case word; words of 2 letters or fewer, and anything not purely alphabetic, unchanged."""
    if len(word) <= 2 or not word.isalpha():
        return word
    word = _step1a(word)
    word = _step1b(word)
    word = _step1c(word)
    word = _replace_longest(word, _STEP2, min_measure=1)
    word = _replace_longest(word, _STEP3, min_measure=1)
    word = _step4(word)
    return _step5(word)


def _consonant(word: str, i: int) -> bool:
    ch = word[i]
    if ch in "aeiou":
        return False
    if ch == "y":
        return i == 0 or not _consonant(word, i - 1)
    return True


def _measure(word: str) -> int:
    """m in [C](VC)^m[V]: how many vowel-consonant runs the word has."""
    m, previous_vowel = 0, False
    for i in range(len(word)):
        vowel = not _consonant(word, i)
        if previous_vowel and not vowel:
            m += 1
        previous_vowel = vowel
    return m


def _has_vowel(word: str) -> bool:
    return any(not _consonant(word, i) for i in range(len(word)))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonant(word, len(word) - 1)


def _cvc(word: str) -> bool:
    """Ends consonant-vowel-consonant, the last not w, x or y (hop, not hoop)."""
    n = len(word)
    if n < 3 or word[-1] in "wxy":
        return False
    return _consonant(word, n - 3) and not _consonant(word, n - 2) and _consonant(word, n - 1)


def _step1a(word: str) -> str:
    if word.endswith(("sses", "ies")):
        return word[:-2]
    if word.endswith(("ss", "us", "is")):
        return word
    return word[:-1] if word.endswith("s") else word


def _step1b(word: str) -> str:
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            base = word[: -len(suffix)]
            if base.endswith(("at", "bl", "iz")):
                return base + "e"
            if _double_consonant(base) and base[-1] not in "lsz":
                return base[:-1]
            if _measure(base) == 1 and _cvc(base):
                return base + "e"
            return base
    return word


def _step1c(word: str) -> str:
    return word[:-1] + "i" if word.endswith("y") and _has_vowel(word[:-1]) else word


def _replace_longest(word: str, rules: tuple[tuple[str, str], ...], min_measure: int) -> str:
    best: tuple[str, str] | None = None
    for suffix, replacement in rules:
        if word.endswith(suffix) and (best is None or len(suffix) > len(best[0])):
            best = (suffix, replacement)
    if best is None:
        return word
    base = word[: -len(best[0])]
    return base + best[1] if _measure(base) >= min_measure else word


def _step4(word: str) -> str:
    best = max((s for s in _STEP4 if word.endswith(s)), key=len, default=None)
    if best is None:
        return word
    base = word[: -len(best)]
    if best == "ion" and not base.endswith(("s", "t")):
        return word
    return base if _measure(base) > 1 else word


def _step5(word: str) -> str:
    if word.endswith("e"):
        base = word[:-1]
        m = _measure(base)
        if m > 1 or (m == 1 and not _cvc(base)):
            word = base
    if _measure(word) > 1 and _double_consonant(word) and word.endswith("l"):
        word = word[:-1]
    return word
