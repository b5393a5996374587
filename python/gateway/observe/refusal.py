"""Refusals: whether an answer declines the request, for the drift monitor's refusal rate.

A refusal says so near its start ("I'm sorry, but I can't help with that", "As an AI, I am unable to...", "This
request goes against our usage policies") or, in a short answer, at its end; and it gives nothing after. So the
scorer looks at the first ~2 sentences and the last one, never the middle of a long answer, and lowers the score
when the decline is followed by a substantial answer after a pivot ("..., but here is how it generally works: ...").
Look-alikes it must not count: "I can't stress enough", "I can't help but notice", "I can't recommend it enough",
limits stated before an answer ("I can't see your screen, but..."), and refusals quoted inside the answer (text in
double quotes is dropped first).

Almost no answer is a refusal, and each pattern below needs one of a few trigger words: the Rust core's
`AnswerEdges` keeps an answer's edges as it streams and tests them for those words (rust/src/refusal.rs), so the
regexes here, over at most ~500 characters, run only for the rare answer that has one (docs/benchmarks/drift.md).
"""

from __future__ import annotations

import re
from typing import Final

from gateway._core import AnswerEdges as _CoreEdges

HEAD_CHARS: Final = _CoreEdges.HEAD_CHARS
"""About two sentences (320 characters): where a refusal states itself."""
TAIL_CHARS: Final = _CoreEdges.TAIL_CHARS
"""The last sentence or so (200 characters): where a short refusal that first explains itself ends."""
SUBSTANTIAL_CHARS: Final = 160
"""Text after a pivot ("but here is...") longer than this is an answer, not a redirect."""
THRESHOLD: Final = 0.5

_APOS = "['\u2019]"
# "I" then a refusal of ability or will: I can't / cannot / won't / will not / refuse to / am unable to / 'm not
# going to / must decline to / won't be able to / would rather not. "I'm" has no space after the I.
_NEG = (
    rf"\bi(?:\s+(?:really|simply|just|unfortunately|therefore|still|definitely|regretfully|sadly))?"
    rf"(?:\s+(?:can{_APOS}?t|cannot|can\s+not|won{_APOS}t|will\s+not|shouldn{_APOS}t|should\s+not|refuse\s+to|"
    rf"cannot\s+and\s+will\s+not|can{_APOS}t\s+and\s+won{_APOS}t|"
    rf"(?:must|have\s+to|need\s+to|will\s+have\s+to)\s+(?:respectfully\s+|politely\s+)?(?:decline|refuse)\s+to|"
    rf"(?:won{_APOS}t|will\s+not)\s+be\s+able\s+to|(?:do\s+not|don{_APOS}t)\s+feel\s+comfortable|"
    rf"would\s+rather\s+not)"
    rf"|(?:\s+am|{_APOS}m)\s+(?:not\s+able|unable|not\s+going|not\s+permitted|not\s+allowed|"
    rf"not\s+in\s+a\s+position)\s+to"
    rf"|{_APOS}d\s+rather\s+not)"
    rf"(?:\s+(?:in\s+good\s+conscience|directly|personally|ethically|safely|legally|really))?"
)
# Verbs that after "I can't" mean an answer is coming (or praise): never a refusal by themselves.
_LOOKALIKE = (
    r"\s+(?:stress|emphasi[sz]e|overstate|overemphasi[sz]e|thank|believe|wait|imagine|recommend|praise|say\s+enough|"
    r"tell\s+you\s+how\s+(?:much|happy|glad|excited|grateful)|help\s+but|help\s+\w+ing|agree\s+more|"
    r"see|know|access|browse|verify|guarantee|predict|remember|recall|be\s+(?:sure|certain)|confirm|"
    r"say\s+for\s+(?:sure|certain)|open|view|read|run|execute|feel|experience|reproduce|go\s+into|"
    r"pretend|promise|cover|list|speak)\b"
)
_ACTION = (
    r"\s+(?:help(?!\s+but\b)(?!\s+\w+ing\b)|assist|provide|comply|fulfil+|do\s+(?:that|this|so|it)|support|"
    r"share|generate|create|write|produce|make|give|offer|engage|participate|complete|answer\s+(?:that|this)|"
    r"continue|go\s+along|process|draft|compose|build|develop|explain\s+how|tell\s+you\s+how\s+to|"
    r"walk\s+you\s+through|be\s+of\s+(?:help|assistance)|facilitate|recommend\s+(?:ways|how|methods)|"
    r"with\s+(?:that|this))\b"
)
_DECLINE = re.compile(
    _NEG
    + _ACTION
    + r"|\bi(?:\s+|'m\s+|\s+am\s+)(?:\w+\s+){0,4}(?:decline|refuse)(?!\s+to\s+believe)\b".replace("'", _APOS)
    + rf"|\b(?:i{_APOS}m|i\s+am)\s+(?:not\s+comfortable|uncomfortable)\s+(?:with|helping|providing|writing|doing)\b"
    + rf"|\b(?:that|this|it)(?:\s+request)?(?:{_APOS}s\s+not|\s+is\s+not|\s+isn{_APOS}t)\s+"
    rf"something\s+i(?:{_APOS}m|\s+am)?\s+(?:can|will|able\s+to|willing\s+to)\s+"
    r"(?:help|assist|do|provide|support)\b"
    + rf"|\bas\s+an\s+ai(?:\s+(?:language\s+model|model|assistant))?,?\s+i(?:\s+|{_APOS}m\s+)"
    rf"(?:can{_APOS}?t|cannot|am\s+(?:unable|not\s+able)|unable|not\s+able|must\s+decline|"
    rf"won{_APOS}t|will\s+not|(?:am\s+)?not\s+(?:permitted|allowed|programmed))\b"
    + rf"|\bi{_APOS}ll\s+(?:have\s+to\s+)?(?:pass|sit\s+this\s+one\s+out)\b",
)
# Any other verb after a refusal of ability or will, unless a look-alike: a refusal only when nothing follows.
_GENERIC = re.compile(_NEG + rf"(?!{_LOOKALIKE})\s+\w+")
_POLICY = re.compile(
    r"\b(?:violates?|violating|against|goes\s+against|go\s+against|contrary\s+to|prohibited\s+by|"
    r"not\s+(?:allowed|permitted)\s+(?:under|by)|in\s+breach\s+of|conflicts?\s+with|outside)\s+"
    r"(?:(?:our|my|the|openai's|anthropic's|google's|its|these)\s+)?"
    r"(?:content\s+|usage\s+|safety\s+|acceptable[\s-]use\s+|use\s+|community\s+|ethical\s+)?"
    r"(?:policy|policies|guidelines|terms(?:\s+of\s+(?:use|service))?|rules|principles)\b"
    r"|\b(?:can't|cannot|unable\s+to|not\s+able\s+to)\b[^.!?\n]{0,60}\b(?:due\s+to|because\s+of|per)\s+"
    r"(?:(?:our|my|the)\s+)?(?:content\s+|usage\s+|safety\s+)?(?:policy|policies|guidelines)\b".replace("'", _APOS),
)
_PIVOT = re.compile(
    r"\b(?:but|however|that\s+said|though|still|instead)\b[,:]?\s+"
    rf"(?:here{_APOS}?s|here\s+(?:is|are)|i\s+can\s+(?:tell|explain|give|share|offer|walk|outline|describe|provide|"
    rf"suggest\s+(?:the|some|a)|point)|generally|in\s+general|typically|usually|based\s+on|the\s+(?:general|typical|"
    rf"usual|common|most)|you\s+(?:can|could|should|might|may)|there\s+are|it{_APOS}s\s+(?:generally|usually|common)|"
    rf"most|many|common)",
)
# Every pattern above needs one of the Rust core's trigger words (rust/src/refusal.rs) in the lower-cased text it
# searches: tests/observe/test_refusal.py holds each pattern's phrasings to that.
_POLICY_WORDS = ("polic", "guideline", "terms", "rules", "principles")
_QUOTED = re.compile(r"\"[^\"\n]{0,400}\"|\u201c[^\u201d\n]{0,400}\u201d")


def refusal_score(text: str) -> float:
    """0 for an answer, up to 0.9 for a clear decline; `is_refusal` cuts at THRESHOLD."""
    edges = AnswerEdges()
    edges.feed(text)
    return edges.score()


def is_refusal(text: str) -> bool:
    """Whether the answer declines the request (see the module docstring for what counts)."""
    return refusal_score(text) >= THRESHOLD


class AnswerEdges(_CoreEdges):
    """What the scorer reads of a streamed answer, kept as it passes (its first and last characters, its length and
    spaces), so a stream is scored without buffering it. `feed` each chunk's text, then `score()` or
    `is_refusal()`."""

    __slots__ = ()

    def score(self) -> float:
        found = self.triggered()
        return _score(self, found) if found else 0.0

    def is_refusal(self) -> bool:
        return self.score() >= THRESHOLD


def _score(edges: AnswerEdges, found: int) -> float:
    """The regexes where `edges.triggered()` found trigger words: the head's first HEAD_CHARS characters
    (`IN_HEAD`), and the tail's last TAIL_CHARS when the answer's tail counts (`IN_TAIL`)."""
    length = edges.length
    if found & _CoreEdges.IN_HEAD:
        # The patterns are lower-case without re.IGNORECASE: lowering ~500 characters once is cheaper than matching
        # case-insensitively at every position (measured: about half the time).
        head_text = edges.head
        head = head_text[:HEAD_CHARS].lower()
        start = head_text.lower()
        if '"' in head or "\u201c" in head:
            start = _QUOTED.sub(" ", start)
            head = start[:HEAD_CHARS]
        found_at = _DECLINE.search(head) or (_POLICY.search(head) if _has_policy_words(head) else None)
        if found_at is not None:
            # A decline followed by a real answer is a caveat, not a refusal.
            rest_at = found_at.end()
            pivot = _PIVOT.search(start, rest_at, rest_at + HEAD_CHARS)
            if pivot is not None and length - pivot.end() >= SUBSTANTIAL_CHARS:
                return 0.2
            return 0.9
        generic = _GENERIC.search(head)
        if generic is not None and length - generic.end() < SUBSTANTIAL_CHARS:
            # "I will not <verb> ..." with little after it: declined, whatever the verb.
            return 0.7
    if found & _CoreEdges.IN_TAIL:
        end = edges.tail.lower()
        tail = end[-TAIL_CHARS:]
        if '"' in tail or "\u201c" in tail:
            tail = _QUOTED.sub(" ", end)[-TAIL_CHARS:]
        if _DECLINE.search(tail) or (_has_policy_words(tail) and _POLICY.search(tail)):
            return 0.6
    return 0.0


def _has_policy_words(low: str) -> bool:
    return any(word in low for word in _POLICY_WORDS)
