"""What the learned verdict reads of a candidate pair: the cosine, the rules' own findings, and how the words align.

One row of numbers per pair, in FEATURES order; the training script (scripts/train_verify_model.py) and the model at
run time (pair_model.py) both take them from here, so the two never disagree. Only pairs that no hard rule vetoed get
here: the rules' findings are then whether they saw any difference, and if so the content words each side has alone
("without recursion", "signs" / "symptoms"). The alignment ratios are rapidfuzz's (C++), over the folded prompts:
a paraphrase that shares few words keeps a high cosine and a middling token-set ratio; a near miss that replaces
one word keeps both high, and its replaced words are what separates it.

Since verify-pair-v3 the words are also aligned by their Snowball stems in the pair's language ("repair" /
"repairing", "vacance" / "vacances"), and each word one side has alone by its nearest spelling on the other side
(rapidfuzz's normalized Indel similarity): a typo or an inflection the rules did not match aligns at 0.8 and more, a
replaced word ("skin" / "lawn") far lower.

Since verify-pair-v4 two more, for rewordings that share few whole words: the Jaccard of the two prompts' character
trigrams (inside words, so "Rotweinflecken" / "Rotwein-Flecken" and "repariere" / "Reparatur" overlap where their
words do not), and the share of the shorter prompt's stems the longer one has (a prompt that adds politeness or
context keeps all of the other's).
"""

from __future__ import annotations

from typing import Final

from rapidfuzz import fuzz, utils

from gateway.cache.semantic import lexicon as lx
from gateway.cache.semantic.prompt_facts import fold, read_prompt
from gateway.cache.semantic.stemming import stem
from gateway.cache.semantic.verify import Verdict

FEATURES: Final = (
    "cosine",
    "rules_same",
    "rewording",
    "only_cached",
    "only_asked",
    "unmatched_share",
    "content_words",
    "length_ratio",
    "scope_word",
    "ratio",
    "token_sort_ratio",
    "token_set_ratio",
    "partial_ratio",
    "unmatched_ratio",
    "same_language",
    "stem_token_set_ratio",
    "stem_jaccard",
    "unmatched_nearest_min",
    "unmatched_nearest_mean",
    "trigram_jaccard",
    "stem_containment",
)


def pair_features(cached: str, asked: str, similarity: float, verdict: Verdict) -> list[float]:
    """The FEATURES of one pair that verify did not veto (`verdict` same, or a constraint)."""
    a, b = read_prompt(cached), read_prompt(asked)
    only_a, only_b = verdict.only_cached, verdict.only_asked
    size_a, size_b = len(a.content), len(b.content)
    text_a, text_b = utils.default_process(fold(cached)), utils.default_process(fold(asked))
    unmatched = (len(only_a) + len(only_b)) / (size_a + size_b) if size_a + size_b else 0.0
    language = a.language if a.language == b.language else "en"
    stems_a = [stem(w, language) for w in a.content]
    stems_b = [stem(w, language) for w in b.content]
    union = set(stems_a) | set(stems_b)
    nearest = _nearest(only_a, b.content) + _nearest(only_b, a.content)
    return [
        similarity,
        float(verdict.same),
        float(verdict.rewording),
        float(len(only_a)),
        float(len(only_b)),
        unmatched,
        float(min(size_a, size_b)),
        min(size_a, size_b) / max(size_a, size_b) if max(size_a, size_b) else 1.0,
        float(any(w in lx.SCOPE_WORDS for w in (*only_a, *only_b))),
        fuzz.ratio(text_a, text_b) / 100,
        fuzz.token_sort_ratio(text_a, text_b) / 100,
        fuzz.token_set_ratio(text_a, text_b) / 100,
        fuzz.partial_ratio(text_a, text_b) / 100,
        fuzz.ratio(" ".join(only_a), " ".join(only_b)) / 100 if only_a and only_b else 0.0,
        float(a.language == b.language),
        fuzz.token_set_ratio(" ".join(stems_a), " ".join(stems_b)) / 100,
        len(set(stems_a) & set(stems_b)) / len(union) if union else 1.0,
        min(nearest, default=1.0),
        sum(nearest) / len(nearest) if nearest else 1.0,
        _jaccard(_trigrams(text_a), _trigrams(text_b)),
        len(set(stems_a) & set(stems_b)) / min(len(set(stems_a)), len(set(stems_b))) if stems_a and stems_b else 1.0,
    ]


def _trigrams(text: str) -> set[str]:
    return {word[i : i + 3] for word in text.split() for i in range(max(len(word) - 2, 1))}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _nearest(words: tuple[str, ...], others: tuple[str, ...]) -> list[float]:
    """For each word, its similarity (0-1) to the nearest spelling among `others`."""
    return [max((fuzz.ratio(word, other) / 100 for other in others), default=0.0) for word in words]
