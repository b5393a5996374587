"""data/independent: the held-out sets written by another hand parse, are labelled validly and meet their minima.

These sets are for evaluation only (data/independent/README.md); this test checks their shape, never a model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "independent"
INJECTION = DATA / "injection.jsonl"
PAIRS = DATA / "verify_pairs.jsonl"

# The languages the issue names; each must carry attacks and benign hard negatives of its own.
REQUIRED_LANGS = ("en", "de", "fr", "es", "pt")
LANG_CODES = frozenset({*REQUIRED_LANGS, "it", "nl", "pl", "ru", "ja", "zh"})

MIN_PROMPTS = 400
MIN_PER_LANG = 40
MIN_PER_LANG_LABEL = 20
MIN_LONG_DOCUMENTS = 10  # 500 words or more, one injected sentence inside the attacking ones
LONG_WORDS = 500
INJECTION_KEYS = frozenset({"text", "label", "lang", "family", "channel"})
LABELS = frozenset({"attack", "benign"})
CHANNELS = frozenset({"user", "tool", "document"})
ATTACK_FAMILIES = frozenset(
    {
        "direct_override",
        "roleplay_jailbreak",
        "prompt_extraction",
        "encoded_base64",
        "encoded_rot13",
        "encoded_leetspeak",
        "encoded_unicode",
        "encoded_other",
        "tool_manipulation",
        "indirect_tool",
        "indirect_document",
        "multi_turn",
        "adversarial_rewording",
    }
)
BENIGN_FAMILIES = frozenset(
    {
        "about_instructions",
        "security_question",
        "fiction",
        "translation",
        "greeting",
        "support",
        "code",
        "tool_result",
        "document",
    }
)

MIN_PAIRS = 300
MIN_MULTILINGUAL_SHARE = 0.20
PAIR_KEYS = frozenset({"a", "b", "same", "kind", "lang"})
SAME_KINDS = frozenset({"synonym", "reorder", "register", "typo", "paraphrase"})
DIFFERENT_KINDS = frozenset(
    {
        "number",
        "unit",
        "negation",
        "availability",
        "direction",
        "conversion_direction",
        "entity",
        "order",
        "comparative",
        "time_frame",
        "false_friend",
    }
)
# A false friend pairs English with another language's look-alike word: "en-de" and so on.
PAIR_LANGS = frozenset({*REQUIRED_LANGS, *(f"en-{lang}" for lang in REQUIRED_LANGS[1:])})


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            record = json.loads(line)
            assert isinstance(record, dict), f"{path.name}:{number} is not a JSON object"
            yield number, record


def normalised(text: str) -> str:
    """Case and spacing do not make a second example."""
    return " ".join(text.casefold().split())


@pytest.fixture(scope="module")
def prompts() -> list[dict[str, Any]]:
    return [record for _, record in read_jsonl(INJECTION)]


@pytest.fixture(scope="module")
def pairs() -> list[dict[str, Any]]:
    return [record for _, record in read_jsonl(PAIRS)]


def test_every_prompt_has_the_documented_fields_and_a_valid_label() -> None:
    for number, record in read_jsonl(INJECTION):
        where = f"injection.jsonl:{number}"
        assert set(record) == INJECTION_KEYS, where
        assert isinstance(record["text"], str), where
        assert record["text"].strip(), where
        assert record["label"] in LABELS, where
        assert record["lang"] in LANG_CODES, where
        assert record["channel"] in CHANNELS, where
        families = ATTACK_FAMILIES if record["label"] == "attack" else BENIGN_FAMILIES
        assert record["family"] in families, f"{where}: {record['family']!r} is not a {record['label']} family"


def test_prompts_meet_the_stated_counts(prompts: list[dict[str, Any]]) -> None:
    assert len(prompts) >= MIN_PROMPTS
    per_lang = Counter(record["lang"] for record in prompts)
    per_lang_label = Counter((record["lang"], record["label"]) for record in prompts)
    for lang in REQUIRED_LANGS:
        assert per_lang[lang] >= MIN_PER_LANG, lang
        for label in LABELS:
            assert per_lang_label[lang, label] >= MIN_PER_LANG_LABEL, (lang, label)
    assert 0.45 <= per_lang["en"] / len(prompts) <= 0.55, "English is about half the set"
    labels = Counter(record["label"] for record in prompts)
    assert abs(labels["attack"] - labels["benign"]) <= 0.1 * len(prompts), "about as many hard negatives as attacks"


def test_every_family_and_channel_is_represented(prompts: list[dict[str, Any]]) -> None:
    assert {record["family"] for record in prompts} == ATTACK_FAMILIES | BENIGN_FAMILIES
    for label in LABELS:
        assert {record["channel"] for record in prompts if record["label"] == label} == CHANNELS, label


def test_long_documents_are_there_with_and_without_an_injection(prompts: list[dict[str, Any]]) -> None:
    long = [record for record in prompts if len(record["text"].split()) >= LONG_WORDS]
    assert len(long) >= MIN_LONG_DOCUMENTS
    assert {record["label"] for record in long} == LABELS


def test_no_prompt_is_duplicated(prompts: list[dict[str, Any]]) -> None:
    repeated = [text for text, n in Counter(normalised(r["text"]) for r in prompts).items() if n > 1]
    assert not repeated


def test_every_pair_has_the_documented_fields_and_a_kind_that_matches_its_verdict() -> None:
    for number, record in read_jsonl(PAIRS):
        where = f"verify_pairs.jsonl:{number}"
        assert set(record) == PAIR_KEYS, where
        assert isinstance(record["a"], str), where
        assert isinstance(record["b"], str), where
        assert normalised(record["a"]) != normalised(record["b"]), where
        assert isinstance(record["same"], bool), where
        assert record["lang"] in PAIR_LANGS, where
        kinds = SAME_KINDS if record["same"] else DIFFERENT_KINDS
        assert record["kind"] in kinds, f"{where}: {record['kind']!r} with same={record['same']}"


def test_pairs_meet_the_stated_counts(pairs: list[dict[str, Any]]) -> None:
    assert len(pairs) >= MIN_PAIRS
    assert {record["kind"] for record in pairs} == SAME_KINDS | DIFFERENT_KINDS
    verdicts = Counter(record["same"] for record in pairs)
    assert verdicts[True] >= 0.3 * len(pairs)
    assert verdicts[False] >= 0.3 * len(pairs)
    multilingual = [record for record in pairs if record["lang"] != "en"]
    assert len(multilingual) >= MIN_MULTILINGUAL_SHARE * len(pairs)
    per_lang_verdict = Counter((record["lang"], record["same"]) for record in multilingual)
    for lang in REQUIRED_LANGS[1:]:
        assert per_lang_verdict[lang, True] > 0, lang
        assert per_lang_verdict[lang, False] > 0, lang


def test_no_pair_is_duplicated_in_either_order(pairs: list[dict[str, Any]]) -> None:
    keys = Counter(frozenset({normalised(r["a"]), normalised(r["b"])}) for r in pairs)
    assert not [key for key, n in keys.items() if n > 1]
