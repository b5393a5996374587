"""gateway._core.PiiScanner on a labelled corpus (precision and recall per kind), redaction, restoration, streaming."""

from __future__ import annotations

import re

import pytest

from gateway._core import PII_STREAM_HOLD_CHARS, PiiScanner
from tests.core.pii_corpus import GENERATORS, build_corpus

KINDS = list(GENERATORS)


def measure() -> dict[str, tuple[float, float]]:
    scanner = PiiScanner()
    counts = {kind: [0, 0, 0] for kind in KINDS}  # true positives, false positives, false negatives
    for sample in build_corpus():
        found = {(m.start, m.end, m.kind) for m in scanner.scan(sample.text)}
        gold = set(sample.spans)
        for start, end, kind in found:
            counts[kind][0 if (start, end, kind) in gold else 1] += 1
        for span in gold - found:
            counts[span[2]][2] += 1
    return {
        kind: (tp / (tp + fp) if tp + fp else 1.0, tp / (tp + fn) if tp + fn else 1.0)
        for kind, (tp, fp, fn) in counts.items()
    }


RESULTS = measure()


@pytest.mark.parametrize("kind", KINDS)
def test_precision_and_recall_per_kind(kind: str) -> None:
    precision, recall = RESULTS[kind]
    assert precision >= 0.95, f"{kind} precision {precision:.3f}"
    assert recall >= 0.95, f"{kind} recall {recall:.3f}"


def test_spans_are_character_offsets() -> None:
    text = "Grüße 🙂 — write to juergen@example.de or call +49 30 901820 please"
    matches = PiiScanner().scan(text)
    assert [(m.kind, m.text) for m in matches] == [
        ("EMAIL_ADDRESS", "juergen@example.de"),
        ("PHONE_NUMBER", "+49 30 901820"),
    ]
    assert [text[m.start : m.end] for m in matches] == ["juergen@example.de", "+49 30 901820"]


def test_context_words_raise_scores() -> None:
    scanner = PiiScanner(min_score=0.0)
    bare = next(m for m in scanner.scan("number 415-555-2671 here") if m.kind == "PHONE_NUMBER")
    with_context = next(m for m in scanner.scan("phone: 415-555-2671 here") if m.kind == "PHONE_NUMBER")
    assert with_context.score > bare.score
    assert not [m for m in PiiScanner().scan("the id is 123456789") if m.kind == "US_SSN"]
    assert [m.kind for m in PiiScanner().scan("my ssn is 123456789")] == ["US_SSN"]


def test_redaction_modes_and_restoration() -> None:
    scanner = PiiScanner()
    text = "Mail ann@example.com or ann@example.com, card 4111-1111-1111-1111."
    redacted, mapping = scanner.redact(text)
    assert redacted == "Mail <EMAIL_1> or <EMAIL_1>, card <CREDIT_CARD_1>."
    assert mapping == {"<EMAIL_1>": "ann@example.com", "<CREDIT_CARD_1>": "4111-1111-1111-1111"}
    assert PiiScanner.restore("Sure, I wrote to <EMAIL_1>.", mapping) == "Sure, I wrote to ann@example.com."
    masked, none = scanner.redact(text, "mask")
    assert masked == "Mail *************** or ***************, card *******************."
    assert none == {}
    hashed, _ = scanner.redact(text, "hash")
    emails = re.findall(r"<EMAIL:[0-9a-f]{6}>", hashed)
    assert len(emails) == 2
    assert emails[0] == emails[1], "equal values hash alike"
    only_cards, _ = scanner.redact(text, kinds=["CREDIT_CARD"])
    assert "ann@example.com" in only_cards
    assert "4111" not in only_cards


@pytest.mark.parametrize("kind", KINDS)
def test_redaction_never_leaves_a_detected_item(kind: str) -> None:
    scanner = PiiScanner()
    for sample in build_corpus(seed=11, per_kind=10):
        if not sample.spans or sample.spans[0][2] != kind:
            continue
        start, end, _ = sample.spans[0]
        for mode in ("mask", "placeholder", "hash"):
            redacted, _ = scanner.redact(sample.text, mode)
            assert sample.text[start:end] not in redacted


def test_stream_catches_an_item_split_at_every_position() -> None:
    scanner = PiiScanner()
    text = "Hello! My card is 4111 1111 1111 1111 and my key ghp_" + "a1B2" * 9 + ", cheers from the team."
    for split in range(1, len(text)):
        stream = scanner.stream()
        out = stream.feed(text[:split]) + stream.feed(text[split:]) + stream.finish()
        assert "4111" not in out
        assert "ghp_" not in out
        assert out.startswith("Hello! My card is <CREDIT_CARD_1>")
        assert stream.mapping["<CREDIT_CARD_1>"] == "4111 1111 1111 1111"


def test_stream_holds_back_no_more_than_its_window() -> None:
    stream = PiiScanner().stream()
    words = "plain words without anything sensitive in them at all " * 20
    released = stream.feed(words)
    assert len(words) - len(released) <= PII_STREAM_HOLD_CHARS + 20
    assert released + stream.finish() == words


def test_stream_holds_a_private_key_block_until_it_ends() -> None:
    stream = PiiScanner().stream()
    out = stream.feed("key follows\n-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 300 + "\n")
    assert "BEGIN" not in out
    out += stream.feed("-----END RSA PRIVATE KEY-----\nbye") + stream.finish()
    assert "AAAA" not in out
    assert "<SECRET_1>" in out


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: PiiScanner(kinds=["PASSPORT"]), "unknown PII kind"),
        (lambda: PiiScanner(min_score=2.0), "min_score"),
        (lambda: PiiScanner().redact("x", "erase"), "unknown redaction mode"),
        (lambda: PiiScanner().stream("erase"), "unknown redaction mode"),
    ],
)
def test_bad_arguments(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
