"""Verify: do two prompts ask for the same thing? The semantic cache serves an answer only if they do.

An embedding puts "convert 5 km to miles" and "convert 5 miles to km" at cosine 0.987; this stage reads the words.
Each prompt is read once into `PromptFacts` (prompt_facts.py), then the facts are compared in a fixed order and the
first difference is the verdict's reason:

    number / version / unit -> negation -> scope -> antonym -> availability -> alternative -> time frame
    -> language -> entity -> direction -> order (swapped places, reversed, steps) -> constraint

Content words match despite case, accents, plurals and suffixes (Snowball stemmers in the prompt's language), typos
(typos.py) and a small synonym table. Numbers, units and names get no such slack beyond one typo. A content word in
one prompt only is a constraint the other did not ask for ("without recursion", "in one line"); politeness and
generic request words ("please", "can you", "explain") are not content.

Pure, no I/O; tens of microseconds per pair of 30-word prompts (benches/cache/bench_semantic.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Final

from gateway.cache.semantic import lexicon as lx
from gateway.cache.semantic.prompt_facts import (
    COORDINATING_WORDS,
    COORDINATION,
    PHRASE,
    PromptFacts,
    is_filler,
    read_prompt,
)
from gateway.cache.semantic.stemming import stem
from gateway.cache.semantic.typos import MIN_LETTERS, is_typo_of


@dataclass(frozen=True, slots=True)
class Verdict:
    """`same` when both prompts ask for the same thing; else `reason` names the first difference found, as
    "kind: detail" ("number: 5 vs 50", "negation", "direction: km->mi vs mi->km"); "" when same.

    `rewording` marks a difference of words only: every number, polarity, name, language and direction agrees, no
    side adds a word the other lacks, and some words were replaced on both sides ("symptoms" / "signs"). Verify
    cannot tell a synonym from another thing there; the matcher leaves those to a very high cosine."""

    same: bool
    reason: str = ""
    rewording: bool = False
    only_cached: tuple[str, ...] = ()
    """For a constraint: the content words only the cached prompt has (the learned verdict reads them)."""
    only_asked: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """The reason's kind ("number", "negation", ...), for metrics; "" when same."""
        return self.reason.split(":", 1)[0]


SAME: Final = Verdict(True)
REASON_KINDS: Final = (
    "operator", "number", "version", "unit", "negation", "scope", "antonym", "availability", "alternative",
    "time_frame", "language", "entity", "direction", "order", "constraint", "model",
)  # fmt: skip
VETOES: Final = frozenset(REASON_KINDS) - {"constraint", "model"}
"""Differences that are never a hit, whatever the learned verdict says: only a constraint (content words one side
has alone) may be a rewording. "model" is the learned verdict's own refusal (matcher.py)."""


def compare(cached: str, asked: str) -> Verdict:
    """Whether `asked` asks for what `cached` asked for; the reason names the first difference."""
    a, b = read_prompt(cached), read_prompt(asked)
    language = a.language if a.language == b.language else "en"
    for check in _CHECKS:
        verdict = check(a, b, language)
        if not verdict.same:
            return verdict
    return SAME


def _check_operators(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    if a.operators != b.operators:
        only_a = Counter(a.operators) - Counter(b.operators)
        only_b = Counter(b.operators) - Counter(a.operators)
        return Verdict(False, f"operator: {' '.join(sorted(only_a)) or '-'} vs {' '.join(sorted(only_b)) or '-'}")
    return SAME


def _check_numbers(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    if a.numbers != b.numbers:
        only_a = Counter(a.numbers) - Counter(b.numbers)
        only_b = Counter(b.numbers) - Counter(a.numbers)
        version = any(v in a.versions for v in only_a) or any(v in b.versions for v in only_b)
        return Verdict(False, f"{'version' if version else 'number'}: {_numbers(only_a)} vs {_numbers(only_b)}")
    if a.units != b.units:
        units_a = Counter(a.units) - Counter(b.units)
        units_b = Counter(b.units) - Counter(a.units)
        return Verdict(False, f"unit: {_listed(units_a.elements())} vs {_listed(units_b.elements())}")
    return SAME


def _check_negation(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    return SAME if a.negated == b.negated else Verdict(False, "negation")


def _check_scope(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """ "Are all mushrooms poisonous?" / "Are some...", "Do all birds fly?" / "Which birds fly?": another share of a
    set. A lone "some" or "any" is how people ask ("any tips?") and a lone "most" is mostly a superlative ("the most
    efficient way"), so only "all" on one side alone, or two different quantifiers, tell the requests apart."""
    if a.quantifiers == b.quantifiers:
        return SAME
    if (a.quantifiers and b.quantifiers) or "all" in a.quantifiers ^ b.quantifiers:
        return Verdict(False, f"scope: {_listed(a.quantifiers)} vs {_listed(b.quantifiers)}")
    return SAME


def _check_availability(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """ "Which stores have it in stock?" / "...on backorder?": one asks for what the other excludes."""
    if a.unavailable == b.unavailable:
        return SAME
    return Verdict(
        False, f"availability: {'unavailable' if a.unavailable else '-'} vs {'unavailable' if b.unavailable else '-'}"
    )


def _check_time_frame(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """ "this weekend" / "next weekend", "ce soir" / "demain soir", "tomorrow" / "next week": other times. Shifts
    differ where both prompts place a time, or where one does and both name the same kind of time."""
    if a.time_shifts == b.time_shifts:
        return SAME
    if (a.time_shifts and b.time_shifts) or a.time_nouns & b.time_nouns:
        return Verdict(False, f"time_frame: {_listed(a.time_shifts)} vs {_listed(b.time_shifts)}")
    return SAME


def _check_order_words(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """ "Sort alphabetically" / "sort in reverse alphabetical order": both ask for an order, one reversed. And
    "reverse the list, then append 4" / "append 4, then reverse it": the same steps in another order."""
    if a.reversed_order is not None and b.reversed_order is not None and a.reversed_order != b.reversed_order:
        return Verdict(False, "order: reversed on one side")
    steps_a, steps_b = _stemmed(a.steps, language), _stemmed(b.steps, language)
    if len(steps_a) > 1 and steps_a != steps_b and sorted(steps_a) == sorted(steps_b):
        return Verdict(False, f"order: steps {' > '.join(a.steps)} vs {' > '.join(b.steps)}")
    if a.precedence is not None and b.precedence is not None:
        (before_a, after_a), (before_b, after_b) = (
            tuple(set(_stemmed(side, language)) for side in facts.precedence)
            for facts in (a, b)
            if facts.precedence is not None
        )
        if before_a & after_b and after_a & before_b:
            return Verdict(False, "order: what comes before what")
    return _check_swapped_words(a, b, language)


def _check_swapped_words(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """ "Is every square a rectangle?" / "Is every rectangle a square?": the same words, two of them traded, nothing
    else moved (so "the file size" / "the size of the file", which adds a word, is no swap), and no "and" / "or"
    between them ("compare MySQL and PostgreSQL" is one list). An auxiliary "do" is left out first, so "Who beat
    Argentina?" / "Who did Argentina beat?" is a swap too."""
    words_a = [w for w in a.sequence if w not in _AUXILIARIES]
    words_b = [w for w in b.sequence if w not in _AUXILIARIES]
    if len(words_a) != len(words_b):
        return SAME
    keys_a, keys_b = _stemmed(words_a, language), _stemmed(words_b, language)
    differ = [i for i, (x, y) in enumerate(zip(keys_a, keys_b, strict=True)) if x != y]
    if len(differ) != 2:
        return SAME
    i, j = differ
    x, y = words_a[i], words_a[j]
    listed = any(w in COORDINATING_WORDS for w in words_a[i + 1 : j])
    if (keys_b[i], keys_b[j]) == (keys_a[j], keys_a[i]) and not listed and not is_filler(x) and not is_filler(y):
        return Verdict(False, f"order: {x} .. {y} vs {words_b[i]} .. {words_b[j]}")
    return SAME


_AUXILIARIES: Final = frozenset({"do", "does", "did"})


def _stemmed(words: Iterable[str], language: str) -> list[str]:
    return [_key(w, language) for w in words]


def _check_antonyms(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """Opposites in the two prompts, parts of hyphenated words included ("best-rated" / "worst-rated")."""
    opposites = _opposites(language)
    stems_a = {stem(w, language): w for w in _with_parts(a.words)}
    stems_b = {stem(w, language): w for w in _with_parts(b.words)}
    for x in sorted(stems_a.keys() & opposites.keys()):
        if x in stems_b:
            continue
        for y in opposites[x]:
            if y in stems_b and y not in stems_a:
                return Verdict(False, f"antonym: {stems_a[x]} vs {stems_b[y]}")
    only_a, only_b = a.words - b.words, b.words - a.words
    for x in sorted(only_a):
        for y in sorted(only_b):
            if _prefix_opposites(x, y):
                return Verdict(False, f"antonym: {x} vs {y}")
    return SAME


def _with_parts(words: frozenset[str]) -> set[str]:
    return {part for w in words for part in (w, *w.split("-")) if part}


def _prefix_opposites(x: str, y: str) -> bool:
    """activate/deactivate, like/dislike, toxic/non-toxic, overwater/underwater: one word is the other behind a
    negating prefix, or both are one stem behind swapped prefixes."""
    short, long_ = (x, y) if len(x) < len(y) else (y, x)
    if len(short) >= 4 and long_.endswith(short) and long_[: -len(short)].rstrip("-") in lx.NEGATING_PREFIXES:
        return True
    for p, q in lx.SWAPPED_PREFIXES:
        for u, v in ((x, y), (y, x)):
            if u.startswith(p) and v.startswith(q) and len(u) - len(p) >= 3 and u[len(p) :] == v[len(q) :]:
                return True
    return False


def _check_alternatives(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """Monday/Tuesday, June/July, red/blue: one member of a closed set replaced by another."""
    only_a, only_b = a.words - b.words, b.words - a.words
    for group in lx.ALTERNATIVE_SETS:
        x, y = sorted(only_a & group), sorted(only_b & group)
        if x and y:
            return Verdict(False, f"alternative: {x[0]} vs {y[0]}")
    return SAME


def _check_languages(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    if a.languages == b.languages:
        return SAME
    return Verdict(False, f"language: {_listed(a.languages - b.languages)} vs {_listed(b.languages - a.languages)}")


def _check_names(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """Names one prompt has alone, or two titles that differ ("The Road" / "On the Road": the same capitalised
    words, another book)."""
    if a.titles and b.titles and a.titles != b.titles:
        return Verdict(False, f"entity: {_listed(a.titles - b.titles)} vs {_listed(b.titles - a.titles)}")
    spelled = _spelled_out(a, b) | _spelled_out(b, a)
    only_a = [n for n in a.names if not _written_in(n, b) and not _spells(n, spelled)]
    only_b = [n for n in b.names if not _written_in(n, a) and not _spells(n, spelled)]
    if language == "de":
        # German capitalises every noun: a noun one side has alone, or writes as part of a compound ("Teppich" /
        # "Teppichboden"), is a constraint for the learned verdict; a name traded for another is still a veto.
        only_a = [n for n in only_a if not _in_compound(n, b.words)]
        only_b = [n for n in only_b if not _in_compound(n, a.words)]
        if not only_a or not only_b:
            return SAME
    if not only_a and not only_b:
        return SAME
    return Verdict(False, f"entity: {_listed(only_a)} vs {_listed(only_b)}")


def _in_compound(name: str, words: frozenset[str]) -> bool:
    return len(name) >= MIN_LETTERS and any(
        w != name and (w.startswith(name) or w.endswith(name) or name.startswith(w)) and len(w) >= MIN_LETTERS
        for w in words
    )


def _spelled_out(a: PromptFacts, b: PromptFacts) -> frozenset[str]:
    """Acronyms of `a` that `b` spells out, with the words that spell them: "GDP" / "gross domestic product", "MBA" /
    "Master of Business Administration" (small words inside skipped), "NSAIDs" / "non-steroidal anti-inflammatory
    drugs" (hyphenated parts count). Since verify-pair-v4: an abbreviation is a rewording, not another name."""
    words = [part for w in b.sequence for part in w.split("-") if part]
    found: set[str] = set()
    for name in a.names:
        if not 2 <= len(name) <= 7 or not name.isalpha():
            continue
        for acronym in {name, name.removesuffix("s")} - {""}:
            run = _initials_run(acronym, words)
            if run:
                found.update((name, *run))
    return frozenset(found)


def _spells(word: str, spelled: frozenset[str]) -> bool:
    return all(part in spelled for part in word.split("-") if part)


def _initials_run(acronym: str, words: list[str]) -> tuple[str, ...]:
    """The first run of `words` whose initials, small words inside left out, are `acronym`; () if none."""
    for start, first in enumerate(words):
        if first[0] != acronym[0] or first in lx.STOP_WORDS:
            continue
        initials = ""
        for end in range(start, len(words)):
            if words[end] in lx.STOP_WORDS:
                continue
            initials += words[end][0]
            if initials == acronym:
                return tuple(words[start : end + 1])
            if not acronym.startswith(initials):
                break
    return ()


def _written_in(name: str, facts: PromptFacts) -> bool:
    return name in facts.words or (len(name) >= MIN_LETTERS and any(is_typo_of(name, w) for w in facts.words))


def _check_direction(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """A thing that one prompt goes from and the other goes to: "Paris to Rome" vs "Rome to Paris"."""
    routes_a, routes_b = _stemmed_routes(a, language), _stemmed_routes(b, language)
    sources_a, targets_a = {s for s, _ in routes_a if s}, {t for _, t in routes_a if t}
    sources_b, targets_b = {s for s, _ in routes_b if s}, {t for _, t in routes_b if t}
    flipped = (sources_a & targets_b) | (targets_a & sources_b)
    if not flipped:
        return SAME
    return Verdict(False, f"direction: {_routes(a, routes_a, flipped)} vs {_routes(b, routes_b, flipped)}")


def _stemmed_routes(facts: PromptFacts, language: str) -> list[tuple[str, str]]:
    return [(stem(s, language) if s else s, stem(t, language) if t else t) for s, t in facts.routes]


def _check_constraints(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    spelled = _spelled_out(a, b) | _spelled_out(b, a)
    only_a = [w for w in _unmatched(a.content, b.content, language) if not _spells(w, spelled)]
    only_b = [w for w in _unmatched(b.content, a.content, language) if not _spells(w, spelled)]
    only_a, only_b = _join_compounds(only_a, only_b), _join_compounds(only_b, only_a)
    if not only_a and not only_b:
        return SAME
    said = " vs ".join(" ".join(words) for words in (only_a, only_b) if words)
    return Verdict(
        False, f"constraint: {said}", _is_rewording(only_a, only_b), only_cached=tuple(only_a), only_asked=tuple(only_b)
    )


def _check_order(a: PromptFacts, b: PromptFacts, language: str) -> Verdict:
    """Two things that trade places around a third: "does the dog chase the cat" / "does the cat chase the dog",
    "is Python more popular than Java" / "is Java more popular than Python", "2 to the power of 10" / "10 to the
    power of 2". Words next to each other, in the same order, in both prompts form one unit ("more popular", "big
    dog"); a swap is units x, z, y in a row in one prompt and y, z, x in the other, each of one or two words, and no
    "and" / "or" or phrase-opening preposition between them: "let, const and var" / "var, const and let" is one
    list, and "in the Northern Hemisphere in winter, which constellations" / "which constellations in winter in the
    Northern Hemisphere" moves whole phrases. A passive rewording ("is the cat chased by the dog") reads as a swap
    and is refused: a miss, not a wrong answer. Not caught: a swap with nothing between ("subtract 3 from 10" /
    "subtract 10 from 3"), or around a middle that is itself a list ("faster and safer than")."""
    seq_a, seq_b = _occurrences(a.order, language), _occurrences(b.order, language)
    at_b = {k: i for i, k in enumerate(seq_b) if k not in _MARKERS}
    units: list[tuple[int, int]] = []
    """First and last index in seq_a of each unit, in the order of prompt a."""
    for i, k in enumerate(seq_a):
        if k not in at_b:
            continue
        if units and units[-1][1] == i - 1 and at_b[k] == at_b[seq_a[i - 1]] + 1:
            units[-1] = (units[-1][0], i)
        else:
            units.append((i, i))
    if len(units) < 3:
        return SAME
    span_b = [(at_b[seq_a[first]], at_b[seq_a[last]]) for first, last in units]
    in_b = sorted(range(len(units)), key=lambda u: span_b[u][0])
    after_in_b = dict(pairwise(in_b))
    for x in range(len(units) - 2):
        z, y = x + 1, x + 2
        size_x, size_y = units[x][1] - units[x][0], units[y][1] - units[y][0]
        if (
            after_in_b.get(y) == z
            and after_in_b.get(z) == x
            and max(size_x, size_y) <= 1
            and units[z][1] - units[z][0] <= 1
            and not _separated(seq_a, (units[x][1], units[z][0]), (units[z][1], units[y][0]))
            and not _separated(seq_b, (span_b[y][1], span_b[z][0]), (span_b[z][1], span_b[x][0]))
        ):
            said_a = f"{_unit(a, units[x])} .. {_unit(a, units[y])}"
            return Verdict(False, f"order: {said_a} vs {_unit(a, units[y])} .. {_unit(a, units[x])}")
    return SAME


_MARKERS: Final = frozenset({COORDINATION, PHRASE})


def _occurrences(order: tuple[str, ...], language: str) -> list[str]:
    """Each word as its key and which occurrence of that key it is, so a repeated word is still placed."""
    seen: Counter[str] = Counter()
    result = []
    for word in order:
        if word in _MARKERS:
            result.append(word)
            continue
        key = _key(word, language)
        seen[key] += 1
        result.append(f"{key}#{seen[key]}")
    return result


def _separated(sequence: list[str], *gaps: tuple[int, int]) -> bool:
    """Whether a marker stands strictly between the two indices of one of the gaps."""
    return any(k in _MARKERS for after, before in gaps for k in sequence[after + 1 : before])


def _unit(facts: PromptFacts, unit: tuple[int, int]) -> str:
    return " ".join(facts.order[unit[0] : unit[1] + 1])


def _is_rewording(only_a: list[str], only_b: list[str]) -> bool:
    """Words replaced on both sides, about as many each way, none a scope word ("without", "only"), all readable by
    an English embedding model (not CJK, where MiniLM sees unknown tokens and any cosine is meaningless)."""
    return (
        bool(only_a)
        and bool(only_b)
        and abs(len(only_a) - len(only_b)) <= 1
        and not any(w in lx.SCOPE_WORDS or not w.isascii() for w in (*only_a, *only_b))
    )


def _unmatched(words: tuple[str, ...], others: tuple[str, ...], language: str) -> list[str]:
    other_keys = {_key(w, language) for w in others}
    return [
        word
        for word in words
        if _key(word, language) not in other_keys
        and not (
            len(word) >= MIN_LETTERS
            and any(is_typo_of(word, o) or is_typo_of(_key(word, language), _key(o, language)) for o in others)
        )
    ]


def _join_compounds(words: list[str], others: list[str]) -> list[str]:
    """Drops words that the other side writes as one: "quick sort" / "quicksort", "data set" / "dataset",
    "sci-fi" / "scifi"."""
    other_forms = {o.replace("-", "") for o in others}
    joined = {x + y for x, y in pairwise(others)}
    kept = []
    for i, word in enumerate(words):
        plain = word.replace("-", "")
        pair_before = i > 0 and words[i - 1] + word in other_forms
        pair_after = i + 1 < len(words) and word + words[i + 1] in other_forms
        if plain in joined or (plain != word and plain in other_forms) or pair_before or pair_after:
            continue
        kept.append(word)
    return kept


def _key(word: str, language: str) -> str:
    """What a content word is compared by: its synonym group, else its stem."""
    stemmed = stem(word, language)
    synonyms = _synonym_keys(language)
    return synonyms.get(word) or synonyms.get(stemmed) or stemmed


@cache
def _synonym_keys(language: str) -> dict[str, str]:
    """Word or stem -> its synonym group's key."""
    groups = lx.SYNONYM_GROUPS
    return {form: min(group) for group in groups for word in group for form in (word, stem(word, language))}


@cache
def _opposites(language: str) -> dict[str, tuple[str, ...]]:
    """Stem -> the stems of its opposites, both ways round."""
    found: dict[str, list[str]] = {}
    for x, y in lx.ANTONYM_PAIRS:
        found.setdefault(stem(x, language), []).append(stem(y, language))
        found.setdefault(stem(y, language), []).append(stem(x, language))
    return {word: tuple(others) for word, others in found.items()}


_CHECKS: Final[tuple[Callable[[PromptFacts, PromptFacts, str], Verdict], ...]] = (
    _check_operators,
    _check_numbers,
    _check_negation,
    _check_scope,
    _check_antonyms,
    _check_availability,
    _check_alternatives,
    _check_time_frame,
    _check_languages,
    _check_names,
    _check_direction,
    _check_order_words,
    _check_constraints,
    _check_order,
)


def _numbers(values: Counter[float]) -> str:
    return _listed(_number(v) for v in sorted(values.elements()))


def _number(value: float) -> str:
    if value > 1_000_000 and value % 1 == 0.5:  # a dotted version (prompt_facts.dotted_version)
        whole = int(value)
        return f"{whole // 1_000_000}.{whole // 1000 % 1000}.{whole % 1000}"
    return f"{value:g}" if value % 1 else str(int(value))


def _routes(facts: PromptFacts, stemmed: list[tuple[str, str]], flipped: set[str]) -> str:
    """The routes between flipped words ("km->mi"), else those that touch one, as written."""
    both = [r for r, s in zip(facts.routes, stemmed, strict=True) if s[0] in flipped and s[1] in flipped]
    routes = both or [r for r, s in zip(facts.routes, stemmed, strict=True) if s[0] in flipped or s[1] in flipped]
    return _listed(f"{s or '?'}->{t or '?'}" for s, t in routes)


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"
