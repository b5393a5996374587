"""A call's query type, from features that cost microseconds to read: the prompt's length bucket, main language,
whether it holds code, whether it brings tools or images, the rule that matched, the team, and the cluster of the
prompt's embedding when the semantic cache computed one.

The language and code features are read by the Rust core (rust/src/query.rs, under a microsecond; Python took
about 8 µs of the strategy's 30 µs budget): this module is their one importer.

A type is a readable string such as `tokens<64 lang=fr` (features at their default are left out), the same in every
worker and across restarts, so profiles keyed by it can be shared and kept. The number of types is bounded: each
feature takes a few values, and rules and teams come from the config.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway import _core
from gateway.config.learning import QueryFeature

TOKEN_BUCKETS = (64, 256, 1024, 4096)
"""Upper bounds of the length buckets, in prompt tokens: powers of four, so a bucket is a rough order of size."""


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
    """The main language: a script's language (zh, ja, ko, ru, ar) when the first 240 characters use one, else the
    language whose common words they hold most (en, fr, de, es), else "und" (undetermined). `text` is lower-cased."""
    return _core.prompt_language(text)


def has_code(text: str) -> bool:
    """A code fence, or two or more lines among the first 2,000 characters that look like statements of a common
    language (they begin with `def `, `import `, `fn `, `select `... or end in ; or {). `text` is lower-cased."""
    return _core.prompt_has_code(text)
