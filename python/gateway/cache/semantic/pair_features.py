"""What the learned verdict reads of a candidate pair: the cosine, the rules' own findings, and how the words align.

One row of numbers per pair, in FEATURES order; the training script (scripts/train_verify_model.py) and the model at
run time (pair_model.py) both take them from here, so the two never disagree. Only pairs that no hard rule vetoed get
here: the rules' findings are then whether they saw any difference, and if so the content words each side has alone
("without recursion", "signs" / "symptoms"). The alignment ratios are rapidfuzz's (C++), over the folded prompts:
a paraphrase that shares few words keeps a high cosine and a middling token-set ratio; a near miss that replaces
one word keeps both high, and its replaced words are what separates it.
"""

from __future__ import annotations

from typing import Final

from rapidfuzz import fuzz, utils

from gateway.cache.semantic import lexicon as lx
from gateway.cache.semantic.prompt_facts import fold, read_prompt
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
)


def pair_features(cached: str, asked: str, similarity: float, verdict: Verdict) -> list[float]:
    """The FEATURES of one pair that verify did not veto (`verdict` same, or a constraint)."""
    a, b = read_prompt(cached), read_prompt(asked)
    only_a, only_b = verdict.only_cached, verdict.only_asked
    size_a, size_b = len(a.content), len(b.content)
    text_a, text_b = utils.default_process(fold(cached)), utils.default_process(fold(asked))
    unmatched = (len(only_a) + len(only_b)) / (size_a + size_b) if size_a + size_b else 0.0
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
    ]
