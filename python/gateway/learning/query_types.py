"""A call's query type, from features that cost microseconds to read: the prompt's length bucket, main language,
whether it holds code, whether it brings tools or images, the rule that matched, the team, and the cluster of the
prompt's embedding when the semantic cache computed one.

A type is a readable string such as `tokens<64 lang=fr` (features at their default are left out), the same in every
worker and across restarts, so profiles keyed by it can be shared and kept. The number of types is bounded: each
feature takes a few values, and rules and teams come from the config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config.learning import QueryFeature

TOKEN_BUCKETS = (64, 256, 1024, 4096)
"""Upper bounds of the length buckets, in prompt tokens: powers of four, so a bucket is a rough order of size."""

_STOPWORDS = {
    "en": "the a an is are was of and to in that it for on with as this be by what how which who why can you your "
    "please from at or not do does",
    "fr": "le la les un une des est et que qui dans pour sur pas avec ce cette il elle nous vous du au",
    "de": "der die das und ist nicht ein eine mit auf den dem zu von sich ich sie wir es auch",
    "es": "el la los las un una es y que en por con para del se no lo como pero su al",
}
# Word -> the languages it is common in: one dict lookup per word of the sample (a regex alternation per language
# cost eight times more).
_COMMON_WORDS: dict[str, tuple[str, ...]] = {}
for _name, _words in _STOPWORDS.items():
    for _word in _words.split():
        _COMMON_WORDS[_word] = (*_COMMON_WORDS.get(_word, ()), _name)
_PUNCTUATION = ".,:;!?\"'()[]"
# Scripts that name their language (or family) outright: the first character of one decides. One character class
# (a group per script made the search five times slower), then the character's range names the language.
_SCRIPT_RANGES = (
    ("\u4e00", "\u9fff", "zh"),
    ("\u3040", "\u30ff", "ja"),
    ("\uac00", "\ud7af", "ko"),
    ("\u0400", "\u04ff", "ru"),
    ("\u0600", "\u06ff", "ar"),
)
_SCRIPTS = re.compile("[" + "".join(f"{low}-{high}" for low, high, _ in _SCRIPT_RANGES) + "]")
# Code: a fence, or two or more lines that look like statements of a common language: a line that begins with one of
# these (after its indent), or ends in ; or {. Line by line with str methods: a multiline regex tried at every
# position of a 2,000-character prompt cost 24 µs, this 2.
_FENCE = "```"
_CODE_STARTS = (
    "def ", "class ", "import ", "fn ", "let ", "const ", "var ", "function ", "public ", "private ", "#include",
    "if (", "for (", "while (", "select ", "}",
)  # fmt: skip
_CODE_ENDS = (";", "{")
SAMPLE_CHARS = 240
"""The language is read from the prompt's first characters: enough to tell, and bounded in cost."""
CODE_SAMPLE_CHARS = 2000
"""Code is looked for further in: a question often comes before its code."""


@dataclass(frozen=True, slots=True)
class TypeFeatures:
    """What a query type is made of, read off one request."""

    prompt_tokens: int
    text: str
    """The caller's words (user and tool turns)."""
    has_tools: bool = False
    has_images: bool = False
    rule: str = ""
    team: str = ""
    cluster: int | None = None
    """The prompt embedding's cluster (learning/clusters.py), when the call has one."""


def query_type(features: TypeFeatures, use: tuple[QueryFeature, ...]) -> str:
    """The type of a call, from the features `use` names, in their order."""
    parts: list[str] = []
    for feature in use:
        if feature is QueryFeature.TOKENS:
            parts.append(token_bucket(features.prompt_tokens))
        elif feature is QueryFeature.LANGUAGE:
            parts.append(f"lang={language(features.text)}")
        elif feature is QueryFeature.CODE:
            if has_code(features.text):
                parts.append("code")
        elif feature is QueryFeature.TOOLS:
            if features.has_tools:
                parts.append("tools")
        elif feature is QueryFeature.IMAGES:
            if features.has_images:
                parts.append("images")
        elif feature is QueryFeature.RULE:
            if features.rule:
                parts.append(f"rule={features.rule}")
        elif feature is QueryFeature.TEAM:
            if features.team:
                parts.append(f"team={features.team}")
        elif features.cluster is not None:
            parts.append(f"cluster={features.cluster}")
    return " ".join(parts) or "any"


def token_bucket(tokens: int) -> str:
    for bound in TOKEN_BUCKETS:
        if tokens < bound:
            return f"tokens<{bound}"
    return f"tokens>={TOKEN_BUCKETS[-1]}"


def language(text: str) -> str:
    """The main language: a script's language when the text uses one, else the language whose common words it holds
    most (en, fr, de, es); "und" (undetermined) when none shows. `text` is lower-cased."""
    sample = text[:SAMPLE_CHARS]
    script = None if sample.isascii() else _SCRIPTS.search(sample)
    if script is not None:
        char = script.group()
        return next(name for low, high, name in _SCRIPT_RANGES if low <= char <= high)
    counts = dict.fromkeys(_STOPWORDS, 0)
    for word in sample.split():
        for name in _COMMON_WORDS.get(word.strip(_PUNCTUATION), ()):
            counts[name] += 1
    best = max(counts, key=counts.__getitem__)  # the first listed wins a tie
    return best if counts[best] else "und"


def has_code(text: str) -> bool:
    """`text` is lower-cased."""
    if _FENCE in text:
        return True
    # Two code lines need a line break between them: a one-line prompt is not searched.
    if "\n" not in text:
        return False
    found = 0
    for line in text[:CODE_SAMPLE_CHARS].split("\n"):
        if _looks_like_code(line.strip()):
            found += 1
            if found == 2:  # two lines make code
                return True
    return False


def _looks_like_code(statement: str) -> bool:
    if statement.startswith(_CODE_STARTS) or statement.endswith(_CODE_ENDS):
        return True
    if statement.startswith("from "):  # from x import y
        parts = statement.split(" ", 2)
        return len(parts) == 3 and parts[1] != "" and parts[2].startswith("import")
    after = statement[6:7]  # return, as a word
    return statement.startswith("return") and not (after.isalnum() or after == "_")
