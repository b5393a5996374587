"""Content rules on the caller's text: blocked keywords and regexes, a prompt-token ceiling, allowed and blocked
topics by keyword lists. A violation raises; the error names the rule, never the text that broke it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.config.guardrails import ContentRules
from gateway.errors import InvalidRequest, PermissionDenied


class _Keywords:
    """Whole words or phrases in lowercased text. A substring test per keyword comes first (memchr speed); the
    word-boundary regex runs only when one is there, since a regex alternation costs ~15 µs per kB of text."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = tuple(sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True))
        self._regex = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in self.words) + r")(?!\w)")

    def __bool__(self) -> bool:
        return bool(self.words)

    def search(self, low: str) -> bool:
        return any(word in low for word in self.words) and self._regex.search(low) is not None


class _BlockedPattern:
    """An operator's regex. Python's engine finds a literal prefix at memchr speed, but a leading \\b hides it (~40x
    slower: 115 µs against 3 µs on 10 kB). So `\\bACME-\\d{4}` is searched as `ACME-\\d{4}`, and the whole pattern
    confirms each candidate where it starts (a match of the whole pattern at s implies one of the rest at s)."""

    _MAX_CANDIDATES = 32
    """Candidates failing the boundary before the plain search takes over (a prefix common inside words)."""

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)
        self._fast: re.Pattern[str] | None = None
        if pattern.startswith("\\b") and pattern[2:3].isalnum():
            try:
                self._fast = re.compile(pattern[2:])
            except re.error:
                self._fast = None

    def search(self, text: str) -> bool:
        if self._fast is None:
            return self.regex.search(text) is not None
        pos = 0
        for _ in range(self._MAX_CANDIDATES):
            candidate = self._fast.search(text, pos)
            if candidate is None:
                return False
            if self.regex.match(text, candidate.start()):
                return True
            pos = candidate.start() + 1
        return self.regex.search(text, pos) is not None


def _keyword_regex(words: Iterable[str]) -> _Keywords | None:
    keywords = _Keywords(words)
    return keywords if keywords else None


class ContentRuleChecker:
    """Compiled once per policy; `check` is pure and thread-safe."""

    def __init__(self, rules: ContentRules) -> None:
        self.max_input_tokens = rules.max_input_tokens
        self._keywords = _keyword_regex(rules.blocked_keywords)
        self._patterns = tuple(_BlockedPattern(p) for p in rules.blocked_patterns)
        self._blocked_topics = tuple(
            (name, regex) for name, words in rules.topics.blocked.items() if (regex := _keyword_regex(words))
        )
        self._allowed_topics = tuple(
            (name, regex) for name, words in rules.topics.allowed.items() if (regex := _keyword_regex(words))
        )

    @property
    def active(self) -> bool:
        return bool(
            self.max_input_tokens or self._keywords or self._patterns or self._blocked_topics or self._allowed_topics
        )

    def check(self, texts: Sequence[str], prompt_tokens: int | None = None) -> None:
        """Raises InvalidRequest (INPUT_TOO_LONG) or PermissionDenied (CONTENT_BLOCKED, TOPIC_BLOCKED,
        TOPIC_NOT_ALLOWED) for the first rule the texts break."""
        if self.max_input_tokens is not None and prompt_tokens is not None and prompt_tokens > self.max_input_tokens:
            raise InvalidRequest(
                f"the prompt has {prompt_tokens} tokens; this policy allows at most {self.max_input_tokens}",
                reason="INPUT_TOO_LONG",
                metadata={"rule": "max_input_tokens", "limit": str(self.max_input_tokens)},
            )
        if not (self._keywords or self._patterns or self._blocked_topics or self._allowed_topics):
            return
        joined = "\n".join(texts)
        low = joined.lower()
        if self._keywords is not None and self._keywords.search(low):
            raise PermissionDenied(
                "the request contains a keyword this policy blocks",
                reason="CONTENT_BLOCKED",
                metadata={"rule": "blocked_keywords"},
            )
        for i, pattern in enumerate(self._patterns):
            if pattern.search(joined):
                raise PermissionDenied(
                    f"the request matches blocked pattern #{i + 1} of this policy",
                    reason="CONTENT_BLOCKED",
                    metadata={"rule": f"blocked_patterns[{i}]"},
                )
        for name, regex in self._blocked_topics:
            if regex.search(low):
                raise PermissionDenied(
                    f"the request touches the blocked topic {name!r}",
                    reason="TOPIC_BLOCKED",
                    metadata={"rule": "topics.blocked", "topic": name},
                )
        if self._allowed_topics and not any(regex.search(low) for _, regex in self._allowed_topics):
            allowed = ", ".join(name for name, _ in self._allowed_topics)
            raise PermissionDenied(
                f"the request is about none of the topics this policy allows ({allowed})",
                reason="TOPIC_NOT_ALLOWED",
                metadata={"rule": "topics.allowed", "topics": allowed},
            )
