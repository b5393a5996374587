"""A call's query type, from features that cost microseconds to read: the prompt's length bucket, main language,
whether it holds code, whether it brings tools or images, the rule that matched and the team.

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
# Code: a fence, or two or more lines that look like statements of a common language.
_FENCE = "```"
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|fn |let |const |var |function |public |private |#include|return\b"
    r"|if \(|for \(|while \(|SELECT |\}|.*[;{]\s*$)",
    re.MULTILINE,
)
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
        elif features.team:
            parts.append(f"team={features.team}")
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
    if _FENCE in text:
        return True
    # Two code lines need a line break between them: a one-line prompt is not searched.
    return "\n" in text and len(_CODE_LINE.findall(text, 0, CODE_SAMPLE_CHARS)) >= 2
