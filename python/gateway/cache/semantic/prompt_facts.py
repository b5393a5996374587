"""Reading a prompt into the facts verify compares: numbers and units, negation, languages, names, where things go
(from/to), and the content words left once stop words and politeness are gone.

Text is folded first (Unicode NFKD, accents and case dropped for lookups, the written case kept for names),
contractions are expanded ("doesn't" -> "does not"), a few phrasal verbs become one word ("turn on" -> "enable"), and a
word that is one typo away from exactly one word the tables know ("pyhton", "Spansih") is read as that word.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from gateway.cache.semantic import lexicon as lx
from gateway.cache.semantic.typos import MIN_LETTERS, is_typo_of


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    """Lower case, accents removed, typos of known words corrected."""
    cased: str
    """As written: a capital mid-sentence marks a name."""
    sentence_start: bool


@dataclass(frozen=True, slots=True)
class PromptFacts:
    """What a prompt asks for, as the checks compare it."""

    numbers: tuple[float, ...]
    """Every number, sorted; dotted versions encoded by `dotted_version`."""
    versions: frozenset[float]
    """The numbers that follow a product or language name ("Python 2", "iOS 17") or a "v"."""
    units: tuple[str, ...]
    negated: bool
    languages: frozenset[str]
    names: tuple[str, ...]
    routes: tuple[tuple[str, str], ...]
    """(from, to) of each "X to Y" / "from X" / "into Y"; "" for a side that is not said. Words unstemmed: verify
    stems them in the language the two prompts share."""
    content: tuple[str, ...]
    order: tuple[str, ...]
    """Every word but fillers, numbers and names included, in the order written; COORDINATION where an "and", "or" or
    "vs" stood, PHRASE where a preposition opened a phrase ("in", "for", "with"...)."""
    words: frozenset[str]
    """Every token, so a name in one prompt can be found written in lower case in the other."""
    operators: tuple[str, ...]
    """Comparison and arithmetic operators as written ("!=", "<", "+"), sorted: the tokenizer drops symbols."""
    language: str
    """"en", "fr", "de", "es" or "pt", detected from its function words: which Snowball stemmer reads it."""
    quantifiers: frozenset[str]
    """The classes of lx.QUANTIFIERS it says ("all", "some", "most"), frequencies ("every night") left out."""
    unavailable: bool
    """Says that something is closed, sold out, booked (lx.UNAVAILABLE)."""
    time_shifts: frozenset[str]
    """The classes of lx.TIME_SHIFTS it says ("next", "last", "tomorrow"...)."""
    time_nouns: frozenset[str]
    """The lx.TIME_NOUNS it says ("weekend", "year")."""
    reversed_order: bool | None
    """None when it asks for no order (no lx.ORDER_WORDS); else whether the order is reversed."""
    steps: tuple[str, ...]
    """The first word of each step when it chains steps ("reverse ... then append ..."): ("reverse", "append")."""
    sequence: tuple[str, ...]
    """Every token as read, in order: two prompts that differ only by two words trading places read the same else."""
    precedence: tuple[frozenset[str], frozenset[str]] | None
    """The content words before and after its first lx.PRECEDENCE_MARKERS word ("deploy the migration | before |
    the code"); None without one."""
    titles: frozenset[str]
    """Titles written in title case that open with a capitalised stop word mid-sentence ("The Road", "On the Road",
    "The Lord of the Rings"), lower case: the stop word is part of the name, which the names leave out."""


@lru_cache(maxsize=8192)
def read_prompt(text: str) -> PromptFacts:
    """The facts of one prompt. Cached: a cache entry's prompt is compared again and again."""
    tokens = tokenize(text)
    words = [t.text for t in tokens]
    language = _detect_language(words)
    numbers, versions, unit_at, used = _read_numbers(tokens)
    language_at = _read_languages(tokens, used)
    name_at = _read_names(tokens, used)
    routes = _read_routes(tokens, language, unit_at | language_at | name_at)
    negated = any(
        w in lx.NEGATIONS or (w == "no" and language in ("en", "es")) or w.endswith(_FREE) for w in words
    ) or _negating_phrase(words)
    content = tuple(w for i, w in enumerate(words) if i not in used and not is_filler(w))
    order = tuple(item for item in map(_order_item, words) if item)
    return PromptFacts(
        numbers=tuple(sorted(numbers)),
        versions=frozenset(versions),
        units=tuple(sorted(unit_at.values())),
        negated=negated,
        languages=frozenset(language_at.values()),
        names=tuple(name_at.values()),
        routes=tuple(routes),
        content=content,
        order=order,
        words=frozenset(words),
        operators=_read_operators(text),
        language=language,
        quantifiers=_read_quantifiers(words),
        unavailable=any(w in lx.UNAVAILABLE for w in words),
        time_shifts=frozenset(lx.TIME_SHIFTS[w] for w in words if w in lx.TIME_SHIFTS),
        time_nouns=frozenset(w for w in words if w in lx.TIME_NOUNS),
        reversed_order=any(w in lx.REVERSAL_WORDS for w in words) if any(w in lx.ORDER_WORDS for w in words) else None,
        steps=_read_steps(words),
        sequence=tuple(words),
        precedence=_read_precedence(words),
        titles=_read_titles(tokens),
    )


_FREE: Final = ("-free", "-frei")
"""A hyphenated "-free" negates what it follows: "gluten-free" / "contains gluten", "pet-free" / "pet-friendly"."""


def _read_quantifiers(words: list[str]) -> frozenset[str]:
    """The quantifier classes of `words`; one followed by a frequency noun ("every night", "todos los dias") or in
    "at all" / "at most" is not about a set."""
    found = set()
    for i, word in enumerate(words):
        kind = lx.QUANTIFIERS.get(word)
        if kind is None or (i and words[i - 1] == "at"):
            continue
        after = [w for w in words[i + 1 : i + 4] if w not in _ARTICLES]
        if after and after[0] in lx.FREQUENCY_NOUNS:
            continue
        found.add(kind)
    return frozenset(found)


def _read_precedence(words: list[str]) -> tuple[frozenset[str], frozenset[str]] | None:
    """Request words ("code", "file") count here: which of two things comes first is the question."""
    at = next((i for i, w in enumerate(words) if w in lx.PRECEDENCE_MARKERS), None)
    if at is None:
        return None
    return _named(words[:at]), _named(words[at + 1 :])


def _named(words: list[str]) -> frozenset[str]:
    return frozenset(w for w in words if w not in _UNNAMED)


def _read_titles(tokens: list[Token]) -> frozenset[str]:
    """Each run from a capitalised stop word mid-sentence to the last capitalised word after it, small words
    ("of", "the") inside; a run of the stop word alone is no title."""
    titles = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not (token.cased[:1].isupper() and not token.sentence_start and token.text in lx.STOP_WORDS):
            i += 1
            continue
        end = i
        for j in range(i + 1, len(tokens)):
            if tokens[j].sentence_start or not (tokens[j].cased[:1].isupper() or tokens[j].text in lx.STOP_WORDS):
                break
            if tokens[j].cased[:1].isupper():
                end = j
        if end > i:
            titles.add(" ".join(t.text for t in tokens[i : end + 1]))
        i = end + 1
    return frozenset(titles)


def _read_steps(words: list[str]) -> tuple[str, ...]:
    """The first content word of each step, when a sequence marker ("then", "puis", "dann") splits the prompt."""
    if not any(w in lx.SEQUENCE_MARKERS for w in words):
        return ()
    steps: list[str] = []
    opened = True
    for word in words:
        if word in lx.SEQUENCE_MARKERS:
            opened = True
        elif opened and not is_filler(word) and word[0].isalpha():
            steps.append(word)
            opened = False
    return tuple(steps)


def _negating_phrase(words: list[str]) -> bool:
    """ "out of stock", "hors ligne", "fuera de servicio": a polarity no negation word carries. "3 out of 5" and
    "nine out of ten" are a count, not a negation."""
    for i, word in enumerate(words):
        for phrase in lx.NEGATING_PHRASES:
            if word == phrase[0] and tuple(words[i : i + len(phrase)]) == phrase:
                before = words[i - 1] if i else ""
                if not (before.isdigit() or before in lx.NUMBER_WORDS):
                    return True
    return False


_OPERATOR: Final = re.compile(r"[!<>=]=|=>|<>|&&|\|\||<<|>>|[<>=+*/^≤≥≠-]")
_NAMED_WITH_SYMBOLS: Final = re.compile(r"\w\+\+|\w#")
"""C++, g++, notepad++, C#, F#: names, not operators. (A percent sign is a unit, read with the numbers.)"""


def _read_operators(text: str) -> tuple[str, ...]:
    """ "x + 1" and "x - 1", "id = 1" and "id != 1" differ in one symbol the words do not show. A hyphen or slash
    between two letters is spelling ("sci-fi", "and/or", "km/h"), not an operator."""
    found = []
    text = _NAMED_WITH_SYMBOLS.sub(" ", text)
    for match in _OPERATOR.finditer(text):
        symbol = match.group()
        if symbol in "-/":
            start, end = match.start(), match.end()
            if start > 0 and end < len(text) and text[start - 1].isalpha() and text[end].isalpha():
                continue
        found.append(symbol)
    return tuple(sorted(found))


COORDINATION: Final = "|"
PHRASE: Final = "/"
COORDINATING_WORDS: Final = frozenset(
    {"and", "or", "nor", "vs", "versus", "und", "oder", "et", "ou", "和", "与", "或", "と"}
)
_PHRASE_OPENERS: Final = frozenset(
    {"in", "on", "at", "for", "from", "with", "during", "under", "using", "via", "within", "into", "onto", "across"}
    | {"through", "about", "before", "after", "near", "inside", "outside", "per", "as"}
)


def _order_item(word: str) -> str:
    """What `word` stands as in PromptFacts.order; "" for a filler that marks nothing."""
    if word in COORDINATING_WORDS:
        return COORDINATION
    if not is_filler(word):
        return word
    return PHRASE if word in _PHRASE_OPENERS else ""


_NOT_CONTENT: Final = (
    lx.STOP_WORDS | lx.FILLER_WORDS | lx.NEGATIONS | lx.TARGET_MARKERS | lx.SOURCE_MARKERS | {"no", "with", "->"}
)


_UNNAMED: Final = lx.STOP_WORDS | lx.PRECEDENCE_MARKERS | COORDINATING_WORDS


def is_filler(word: str) -> bool:
    """A stop word, filler or marker, or an inflection of a filler ("generating", "means", "explained")."""
    if word in _NOT_CONTENT:
        return True
    for suffix, replacements in _INFLECTIONS:
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            base = word[: -len(suffix)]
            if any(base + r in lx.FILLER_WORDS for r in replacements) or (
                suffix in ("ing", "ed") and base[-1] == base[-2:-1] and base[:-1] in lx.FILLER_WORDS
            ):
                return True
    return False


_INFLECTIONS: Final = (("ies", ("y",)), ("es", ("", "e")), ("s", ("",)), ("ed", ("", "e")), ("ing", ("", "e")))

# --- tokens -------------------------------------------------------------------------------------------------------

_CONTRACTIONS: Final = (
    (re.compile(r"\bcan'?t\b|\bcannot\b", re.I), "can not"),
    (re.compile(r"\bwon'?t\b", re.I), "will not"),
    (re.compile(r"\b(\w+)n't\b", re.I), r"\1 not"),
    (re.compile(r"\b(\w+)'(s|re|ve|ll|d|m)\b", re.I), r"\1"),  # what's -> what; a possessive 's goes too
    (re.compile(r"\b([ldjmntsc]|qu)'(?=\w)", re.I), ""),  # French elision: l'eau -> eau, n'est -> est
    (re.compile(r"-(t-)?(je|tu|il|elle|on|nous|vous|ils|elles|ce|moi|toi)\b", re.I), r" \2"),  # peux-tu, est-ce
)
_PHRASES: Final = re.compile(r"\b(" + "|".join(re.escape(p) for p in lx.PHRASES) + r")\b", re.I)
_TOKEN: Final = re.compile(
    r"\d+(?:[.,]\d+)*[a-z%°]*"  # numbers, a unit or multiplier glued on: 5km, 10k, 3.11, 5%
    r"|[$€£¥](?=\s?\d)"  # currency before a number
    r"|->|→"
    r"|[a-z][a-z0-9]*(?:[+#]+|(?:[-.][a-z0-9]+)+)?"  # words, c++, c#, node.js, utf-8, scikit-learn
    r"|[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]"  # kana and CJK ideographs, one at a time: no spaces to split on
    r"|[^\W\d_]+"  # words of other scripts (Cyrillic, Greek, Hangul...)
    r"|[%°]",
    re.I,
)
_SENTENCE_END: Final = re.compile(r"[.!?:;\n\"]\s*$")
_LETTERS_DIGITS: Final = re.compile(r"([a-z]{2,}|v)(\d+(?:\.\d+)*)$", re.I)


def fold(text: str) -> str:
    """NFKD with the accents of Latin letters removed: "café" -> "cafe", "fünf" -> "funf"; full-width forms become
    ASCII. Marks on other scripts stay (a kana's voicing mark changes the word)."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("ß", "ss")
    if text.isascii():
        return text
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", text):
        if out and unicodedata.combining(c) and out[-1] < "\u0250":
            continue
        out.append(c)
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """Words, numbers and symbols of `text`, with where each sentence starts."""
    text = fold(text)
    if "'" in text or "-" in text or "nnot" in text:
        for pattern, replacement in _CONTRACTIONS:
            text = pattern.sub(replacement, text)
    text = _PHRASES.sub(lambda m: lx.PHRASES[m.group().lower()], text)
    tokens: list[Token] = []
    previous_end = 0
    for match in _TOKEN.finditer(text):
        between = text[previous_end : match.start()]
        starts = not tokens or (between != " " and bool(_SENTENCE_END.search(between)))
        previous_end = match.end()
        word = match.group()
        # python3 -> python 3, ipv6 -> ipv 6, sha256 -> sha 256, v2 -> v 2
        split = _LETTERS_DIGITS.match(word) if word[-1].isdigit() and word[0].isalpha() else None
        for i, part in enumerate((split.group(1), split.group(2)) if split else (word,)):
            tokens.append(Token(correct_typo(part.lower()), part, starts and i == 0))
    return tokens


def _known_words() -> dict[tuple[str, int], list[str]]:
    # Names, languages, units, number words and the words the reader drops. Not the opposites or alternatives:
    # content words are never corrected into those ("string" is no typo of "strong"); they get typo slack when
    # matched instead.
    known = (
        lx.KNOWN_NAMES
        | lx.NATURAL_LANGUAGES.keys()
        | lx.PROGRAMMING_LANGUAGES.keys()
        | lx.UNITS.keys()
        | lx.NEGATIONS
        | lx.NUMBER_WORDS.keys()
        | lx.ORDINALS.keys()
        | lx.STOP_WORDS
        | lx.FILLER_WORDS
    )
    index: dict[tuple[str, int], list[str]] = defaultdict(list)
    for word in known:
        if len(word) >= MIN_LETTERS and word.isalpha():
            index[word[0], len(word)].append(word)
    return dict(index)


_KNOWN_BY_START_AND_LENGTH: Final = _known_words()
_NEVER_CORRECTED: Final = frozenset(
    {w for pair in lx.ANTONYM_PAIRS for w in pair}
    | {w for group in lx.ALTERNATIVE_SETS for w in group}
    | {w for group in lx.SYNONYM_GROUPS for w in group}
    | lx.AMBIGUOUS_UNITS.keys()
    | lx.SCOPE_WORDS
)
"""Words the tables know: a word spelt right is never a typo of another."""


@lru_cache(maxsize=65536)
def correct_typo(word: str) -> str:
    """The one known word `word` is a typo of, else `word` (a known word, or a typo of none or of several)."""
    if len(word) < MIN_LETTERS or not word.isalpha():
        return word
    if word in _NEVER_CORRECTED or word in _KNOWN_BY_START_AND_LENGTH.get((word[0], len(word)), ()):
        return word
    found = [
        known
        for size in (len(word) - 1, len(word), len(word) + 1)
        for known in _KNOWN_BY_START_AND_LENGTH.get((word[0], size), ())
        if is_typo_of(word, known)
    ]
    if len(found) > 1:  # a letter dropped, added or swapped is likelier than a neighbouring key ("minuts": minutes)
        found = [known for known in found if len(known) != len(word) or sorted(known) == sorted(word)]
    return found[0] if len(found) == 1 else word


def _detect_language(words: list[str]) -> str:
    """The language code ("en", "fr", "de", "es", "pt") whose function words the text has most of; English on
    ties."""
    counts = {lang: sum(w in table for w in words) for lang, table in _FUNCTION_WORDS.items()}
    best = max(counts, key=lambda lang: (counts[lang], lang == "en"))
    return best if counts[best] > 0 else "en"


_FUNCTION_WORDS: Final = {
    "en": lx.word_set("the a an is are of to in for with how what do does and"),
    "fr": lx.word_set("le la les un une des est du de et pour avec comment quel quelle je vous"),
    "de": lx.word_set("der die das ein eine ist und fur mit wie was ich nicht zu von auf im am dem mein meine meinem"),
    "es": lx.word_set("el la los las un una es y para con como que del de por"),
    "pt": lx.word_set("o os um uma do da dos das de na nas em com nao sao voce eu meu minha"),
}

# --- numbers --------------------------------------------------------------------------------------------------

_NUMBER: Final = re.compile(r"(\d+(?:[.,]\d+)*)([a-z%°]*)", re.I)
_THOUSANDS: Final = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")


def _read_numbers(tokens: list[Token]) -> tuple[list[float], list[float], dict[int, str], set[int]]:
    """Numbers (digits and words), which of them are versions, the units by token position (a number with a unit
    glued on carries it), and every position a number or unit used."""
    numbers: list[float] = []
    versions: list[float] = []
    unit_at: dict[int, str] = {}
    used: set[int] = set()
    i = 0
    while i < len(tokens):
        value, unit, width = _number_at(tokens, i) if _may_start_number(tokens[i].text) else (None, None, 0)
        if value is None:
            unit = lx.UNITS.get(tokens[i].text)  # a unit without a number still counts: "km to miles"
            if unit is not None:
                unit_at[i] = unit
                used.add(i)
            i += 1
            continue
        used.update(range(i, i + width))
        if unit is not None:
            unit_at[i + width - 1] = unit
        elif i + width < len(tokens):  # "5 km", "10 min"
            after = tokens[i + width].text
            unit = lx.UNITS.get(after) or lx.AMBIGUOUS_UNITS.get(after)
            if unit is not None:
                unit_at[i + width] = unit
                used.add(i + width)
                width += 1
        numbers.append(value)
        if _is_version(tokens, i):
            versions.append(value)
        i += width
    return numbers, versions, unit_at, used


def _may_start_number(word: str) -> bool:
    return word[0].isdigit() or word in _NUMBER_STARTS


_NUMBER_STARTS: Final = (
    lx.NUMBER_WORDS.keys()
    | lx.SCALE_WORDS.keys()
    | lx.ORDINALS.keys()
    | lx.WEAK_ONES
    | {k for k in lx.UNITS if not k.isalnum()}
)


def _number_at(tokens: list[Token], i: int) -> tuple[float | None, str | None, int]:
    """(value, unit glued to it or None, tokens used) of a number starting at tokens[i], or (None, None, 0)."""
    word = tokens[i].text
    if word in lx.UNITS and not word.isalnum() and i + 1 < len(tokens) and tokens[i + 1].text[0].isdigit():
        value, _, width = _digits(tokens[i + 1].text)  # $5, €10
        return (value, lx.UNITS[word], width + 1) if value is not None else (None, None, 0)
    if word[0].isdigit():
        return _digits(word)
    return _number_words(tokens, i)


def _digits(word: str) -> tuple[float | None, str | None, int]:
    match = _NUMBER.fullmatch(word)
    if match is None:
        return None, None, 0
    digits, suffix = match.groups()
    if _THOUSANDS.fullmatch(digits):  # 1,000 and 1,000.5; a lone comma is a European decimal: 3,5
        digits = digits.replace(",", "")
    digits = digits.replace(",", ".")
    value = float(digits) if digits.count(".") <= 1 else dotted_version(digits)
    suffix = suffix.lower()
    if not suffix or suffix in lx.ORDINAL_SUFFIXES:  # 10th is 10: "the 10th vs the 20th century" differ by number
        return value, None, 1
    if suffix in lx.MULTIPLIER_SUFFIXES and suffix != "m":  # 10k; "5m" is metres
        return value * lx.MULTIPLIER_SUFFIXES[suffix], None, 1
    unit = lx.UNITS.get(suffix) or lx.AMBIGUOUS_UNITS.get(suffix)
    if unit is None:
        return None, None, 0  # "3d", "1080p", "2fa": an identifier, compared as a word
    return value, unit, 1


def dotted_version(digits: str) -> float:
    """3.11.2 as a float that differs from 3.11.1 and 3.12 (and ends in .5, so it is told from a plain number)."""
    major, minor, *rest = (int(p) for p in digits.split(".")[:3])
    patch = rest[0] if rest else 0
    return major * 1_000_000 + minor * 1000 + patch + 0.5


def _number_words(tokens: list[Token], i: int) -> tuple[float | None, str | None, int]:
    """Numbers in words: "twenty five" -> 25, "two thousand five hundred" -> 2500, "a dozen" -> 12, "one km" -> 1."""
    total, current, width = 0.0, 0.0, 0
    if tokens[i].text in lx.ORDINALS:
        if tokens[i].text == "second" and i > 0 and tokens[i - 1].text in {"a", "per", "one", "each", "every"}:
            return None, None, 0  # "wait a second" is time, not an ordinal
        return float(lx.ORDINALS[tokens[i].text]), None, 1
    while i + width < len(tokens):
        word = tokens[i + width].text
        nxt = tokens[i + width + 1].text if i + width + 1 < len(tokens) else ""
        if word in lx.NUMBER_WORDS:
            current += lx.NUMBER_WORDS[word]
        elif word in lx.SCALE_WORDS and (width or word not in {"cent", "mil"}):
            current = max(current, 1.0) * lx.SCALE_WORDS[word]
            if lx.SCALE_WORDS[word] >= 1000:
                total, current = total + current, 0.0
        elif word == "one" and width:  # "twenty one"
            current += 1
        elif word in lx.WEAK_ONES and not width and (nxt in lx.SCALE_WORDS or nxt == "dozen" or nxt in lx.UNITS):
            current = 0.0 if nxt == "dozen" else 1.0  # "a dozen" is the dozen's 12; "one km" is 1
        elif not (word in {"and", "-"} and width and (nxt in lx.NUMBER_WORDS or nxt in lx.SCALE_WORDS)):
            break  # ("and" goes on: "two hundred and five")
        width += 1
    if width == 0:
        return None, None, 0
    return total + current, None, width


def _is_version(tokens: list[Token], i: int) -> bool:
    if i == 0:
        return False
    before = tokens[i - 1]
    named = before.cased[:1].isupper() and not before.sentence_start
    return (
        before.text in lx.VERSION_WORDS
        or before.text in lx.PROGRAMMING_LANGUAGES
        or before.text in lx.KNOWN_NAMES
        or named
    )


# --- languages and names -------------------------------------------------------------------------------------


def _read_languages(tokens: list[Token], used: set[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for i, token in enumerate(tokens):
        if i in used:
            continue
        name = (
            lx.NATURAL_LANGUAGES.get(token.text)
            or lx.PROGRAMMING_LANGUAGES.get(token.text)
            or (lx.CASED_PROGRAMMING_LANGUAGES.get(token.cased) if not token.sentence_start else None)
        )
        if name is not None:
            found[i] = name
            used.add(i)
    return found


def _read_names(tokens: list[Token], used: set[int]) -> dict[int, str]:
    """Known names in any case, and capitalised words that do not start a sentence (not "I", not a stop word)."""
    names: dict[int, str] = {}
    for i, token in enumerate(tokens):
        if i in used:
            continue
        capitalised = token.cased[:1].isupper() and not token.sentence_start and token.cased != "I"
        acronym = len(token.cased) >= 2 and token.cased.isupper()  # "EST" is a time zone, not French "is"
        if token.text in lx.KNOWN_NAMES or acronym or (capitalised and token.text not in _NOT_CONTENT):
            names[i] = token.text
    return names


# --- direction ------------------------------------------------------------------------------------------------

_MARKERS: Final = (
    lx.SOURCE_MARKERS
    | lx.TARGET_MARKERS
    | lx.CONTEXT_TARGET_MARKERS
    | lx.PAIRED_SOURCE_MARKERS
    | lx.PAIRED_TARGET_MARKERS
)
_ANY_SOURCE: Final = lx.SOURCE_MARKERS | lx.PAIRED_SOURCE_MARKERS
_ARTICLES: Final = lx.word_set(
    "the a an my your this that le la les l un une mon ma mes der die das ein eine einen einem mein meine meinem"
    " meinen el los las mi mis o os um uma meu minha"
)


def _read_routes(tokens: list[Token], language: str, anchors: dict[int, str]) -> list[tuple[str, str]]:
    """(from, to) pairs of the things a prompt moves between: "X to Y", "from X", "into Y", "X in Y".

    X and Y are up to two content words next to the marker ("a CSV file to Excel": csv and file to excel), a number's
    unit standing for the number ("30°C to Fahrenheit"). "to" after "how", "want"... starts an infinitive; "in"/"en"
    (and "a" outside Spanish) lead somewhere only to a natural language or a unit ("5 km in miles", "hello in
    Spanish"), or between two named things ("JSON in YAML")."""
    routes: list[tuple[str, str]] = []
    for i, token in enumerate(tokens):
        word = token.text
        if word not in _MARKERS:
            continue
        end = min(i + 5, len(tokens))
        if word in lx.PAIRED_SOURCE_MARKERS:
            if word not in _paired_sources(language):
                continue
            # the source runs up to the destination marker: "de Paris a Rome" ("a" is no article there)
            end = next((j for j in range(i + 2, min(i + 7, len(tokens))) if tokens[j].text in lx.TARGET_MARKERS), 0)
            if not end:
                continue
        if word in lx.PAIRED_TARGET_MARKERS and not (language == "de" and _after(tokens, i, _ANY_SOURCE)):
            continue
        after = _phrase(tokens, range(i + 1, end), anchors)
        if not after:
            continue
        if word in _ANY_SOURCE:
            routes += [(_anchor(tokens, j, anchors), "") for j in after]
            continue
        before = _phrase(tokens, range(i - 1, max(i - 5, -1), -1), anchors)
        if not _leads_somewhere(tokens, i, language, before, after, anchors):
            continue
        sources = [_anchor(tokens, j, anchors) for j in before] or [""]
        routes += [(source, _anchor(tokens, j, anchors)) for source in sources for j in after]
    # "from Paris to Rome" gave ("paris", "") and ("paris", "rome"): keep the pair only.
    paired = {s for s, t in routes if s and t}
    return [(s, t) for s, t in routes if t or s not in paired]


def _leads_somewhere(
    tokens: list[Token], i: int, language: str, before: list[int], after: list[int], anchors: dict[int, str]
) -> bool:
    word = tokens[i].text
    if word == "to":
        return i > 0 and tokens[i - 1].text not in lx.INFINITIVE_MARKERS
    if (word in lx.TARGET_MARKERS and word != "a") or word in lx.PAIRED_TARGET_MARKERS:
        return True
    if word == "a" and (
        language == "es"
        or _after(tokens, i, _paired_sources(language))
        or (language != "en" and _after(tokens, i, _ANY_SOURCE))
    ):
        return True
    between_names = bool(before) and before[0] in anchors and after[0] in anchors
    if word == "a":
        return between_names
    target = tokens[after[0]].text
    return target in lx.NATURAL_LANGUAGES or target in lx.UNITS or between_names


def _paired_sources(language: str) -> frozenset[str]:
    """lx.PAIRED_SOURCE_MARKERS that may open a route in `language`: English "do" is a verb ("how do I ... to")."""
    return _PAIRED_SOURCES_EN if language == "en" else lx.PAIRED_SOURCE_MARKERS


_PAIRED_SOURCES_EN: Final = lx.PAIRED_SOURCE_MARKERS - {"do"}


def _after(tokens: list[Token], i: int, markers: frozenset[str]) -> bool:
    """Whether one of `markers` stands a few words before position i: "de X a Y", "von X auf Y"."""
    return any(t.text in markers for t in tokens[max(0, i - 5) : i])


def _phrase(tokens: list[Token], positions: range, anchors: dict[int, str]) -> list[int]:
    """Up to two content words from the marker outwards, past articles and numbers, up to a stop word or filler.
    A number with a unit stands for its unit."""
    found: list[int] = []
    for j in positions:
        word = tokens[j].text
        if word in _ARTICLES or (word[0].isdigit() and not word[-1].isalpha()) or word in lx.NUMBER_WORDS:
            continue
        if (word in _NOT_CONTENT and j not in anchors) or word in _MARKERS or len(found) == 2:
            break
        found.append(j)
    return found


def _anchor(tokens: list[Token], j: int, anchors: dict[int, str]) -> str:
    """One spelling per thing, so "km" and "kilometres", "Spanish" and "espanol" compare equal."""
    return anchors.get(j) or lx.AMBIGUOUS_UNITS.get(tokens[j].text) or tokens[j].text
