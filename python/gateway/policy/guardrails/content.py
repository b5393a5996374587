"""Content rules on the caller's text: blocked keywords and regexes, a prompt-token ceiling, allowed and blocked
topics by keyword lists. A violation raises; the error names the rule, never the text that broke it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.config.guardrails import ContentRules
from gateway.errors import InvalidRequest, PermissionDenied


def _keyword_regex(words: Iterable[str]) -> re.Pattern[str] | None:
    """Whole words or phrases, matched against lowercased text; longest first so phrases win over their prefixes."""
    cleaned = sorted({w.strip().lower() for w in words if w.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in cleaned) + r")(?!\w)")


class ContentRuleChecker:
    """Compiled once per policy; `check` is pure and thread-safe."""

    def __init__(self, rules: ContentRules) -> None:
        self.max_input_tokens = rules.max_input_tokens
        self._keywords = _keyword_regex(rules.blocked_keywords)
        self._patterns = tuple(re.compile(p) for p in rules.blocked_patterns)
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
