"""How alike two answers are, in words: the cosine of their word counts (0 nothing shared, 1 the same words as
often). Cheap and explainable; the semantic cache's embeddings can replace it when they exist."""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)


def word_cosine(a: str, b: str) -> float:
    left = Counter(word.lower() for word in _WORD.findall(a))
    right = Counter(word.lower() for word in _WORD.findall(b))
    if not left or not right:
        return 1.0 if not left and not right else 0.0
    dot = sum(count * right[word] for word, count in left.items())
    norm = math.sqrt(sum(c * c for c in left.values())) * math.sqrt(sum(c * c for c in right.values()))
    return dot / norm
