"""Token counting in gateway._core: the same ids as tiktoken, round trips, batches, chat framing and errors."""

# ruff: noqa: RUF001 - the corpus holds look-alike characters on purpose

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import _core
from tests.core.reference import reference_encoding

ENCODINGS = ["cl100k_base", "o200k_base"]

CORPUS = [
    "",
    "hello world",
    "Hello, World! How's it going? I'm fine; we've been there, they'll see.",
    "naïve café résumé — “quotes” and ‘single’ … ellipsis",
    "日本語のテキストと中文文本，还有한국어 텍스트.",
    "emoji 👩‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵, skin tones 👍🏽 and 🤖🚀✨",
    "Ελληνικά και русский язык и עברית وعربي",
    "def parse(x: int) -> list[int]:\n    return [i ** 2 for i in range(x) if i % 3 == 0]\n",
    "    indented\n\n\n\t\ttabs   and    runs        of      spaces           \n",
    " " * 1000 + "x" + "\n" * 300,
    "numbers 1234567890 3.14159 -42 1e10 0xFF 1,000,000",
    "<|endoftext|> looks special but is text <|fim_prefix|><|endofprompt|>",
    "UPPER lower MiXeD CamelCaseWords snake_case_words kebab-case-words",
    "https://example.com/path?query=1&b=2#frag user@example.org",
    "\u200b\u200dzero width\ufeff and \u0000 nul and \x7f del",
    "a" * 5000,
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE",
]


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz ABCXYZ0123456789 \n\t.,;:!?'\"()[]{}<>/\\|-_=+*&^%$#@~`éüñ中文日本🙂👍🏽"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))) for _ in range(count)]


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("text", CORPUS + random_texts(1, 60))
def test_ids_equal_tiktoken(encoding: str, text: str) -> None:
    expected = reference_encoding(encoding).encode_ordinary(text)
    assert _core.encode(text, encoding) == expected
    assert _core.count_tokens(text, encoding) == len(expected)


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=st.text(max_size=300))
def test_any_text_matches_tiktoken_and_round_trips(encoding: str, text: str) -> None:
    ids = _core.encode(text, encoding)
    assert ids == reference_encoding(encoding).encode_ordinary(text)
    assert _core.decode(ids, encoding) == text


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_allowed_special_tokens_match_tiktoken(encoding: str) -> None:
    text = "start<|endoftext|>middle<|endofprompt|>end"
    reference = reference_encoding(encoding)
    assert _core.encode(text, encoding, allowed_special="all") == reference.encode(text, allowed_special="all")
    only = {"<|endoftext|>"}
    assert _core.encode(text, encoding, allowed_special=only) == reference.encode(
        text, allowed_special=only, disallowed_special=()
    )
    assert _core.decode(_core.encode(text, encoding, allowed_special="all"), encoding) == text


def test_decode_replaces_split_characters_like_tiktoken() -> None:
    ids = _core.encode("🙂", "cl100k_base")
    assert len(ids) > 1
    assert _core.decode(ids[:1], "cl100k_base") == reference_encoding("cl100k_base").decode(ids[:1])


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_batches_equal_single_calls(encoding: str) -> None:
    texts = random_texts(2, 50) + ["long text " * 5000] * 10
    assert _core.count_tokens_batch(texts, encoding) == [_core.count_tokens(t, encoding) for t in texts]
    assert _core.encode_batch(texts[:20], encoding) == [_core.encode(t, encoding) for t in texts[:20]]


# The OpenAI cookbook's chat-counting example ("How to count tokens with tiktoken").
COOKBOOK_MESSAGES = [
    (
        "system",
        "",
        "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    ),
    ("system", "example_user", "New synergies will help drive top-line growth."),
    ("system", "example_assistant", "Things working well together will increase revenue."),
    (
        "system",
        "example_user",
        "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    ),
    ("system", "example_assistant", "Let's talk later when we're less busy about how to do better."),
    ("user", "", "This late pivot means we don't have time to boil the ocean for the client deliverable."),
]


def test_chat_framing_matches_openai_cookbook() -> None:
    # 129 prompt tokens for gpt-3.5-turbo-0613/gpt-4-0613 (cl100k_base, 3/1/3 framing).
    assert _core.count_chat_tokens(COOKBOOK_MESSAGES, "cl100k_base") == 129
    assert _core.count_chat_tokens(COOKBOOK_MESSAGES, "cl100k_base", per_message=4, per_name=-1) == 127


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: _core.encode("x", "p50k_base"), 'unknown encoding "p50k_base"'),
        (lambda: _core.count_tokens("x", ""), "unknown encoding"),
        (lambda: _core.decode([10**9], "o200k_base"), "token id 1000000000 is not in o200k_base"),
        (lambda: _core.encode("x", "o200k_base", allowed_special="some"), 'allowed_special takes "all"'),
    ],
)
def test_bad_arguments_raise_value_error(call: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        call()  # type: ignore[operator]


def test_wrong_types_raise_type_error() -> None:
    with pytest.raises(TypeError):
        _core.count_tokens(b"bytes", "o200k_base")  # type: ignore[arg-type]


# The ASCII fast path of the pre-tokenizer hands a piece to the regex whenever a byte that could decide it is not
# ASCII; this alphabet mixes the characters at that border: ASCII whitespace of every kind, contractions in both
# cases, digits, punctuation, and non-ASCII look-alikes (long s U+017F case-folds to s, Arabic-Indic digits,
# combining marks, no-break, ideographic and line-separator spaces).
BORDER_ALPHABET = list(" \t\n\r\x0b\x0c\u00a0\u3000\u2028\u0085aZsSTtmMdDlLrRvVeE'0123456789٣.,/!?-_<|>éſKİı\u0301漢🦀")


def border_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(BORDER_ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(count)]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_fast_path_border_corpus_matches_tiktoken(encoding: str) -> None:
    texts = border_texts(3, 3000)
    reference = reference_encoding(encoding)
    expected = [reference.encode_ordinary(t) for t in texts]
    assert _core.encode_batch(texts, encoding) == expected
    assert _core.count_tokens_batch(texts, encoding) == [len(ids) for ids in expected]


@pytest.mark.parametrize("encoding", ENCODINGS)
@given(text=st.text(alphabet=BORDER_ALPHABET, max_size=80))
def test_border_text_matches_tiktoken(encoding: str, text: str) -> None:
    assert _core.encode(text, encoding) == reference_encoding(encoding).encode_ordinary(text)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("text", ["a\ud800b", "\udfff", "pair \ud83d\ude00 split", "x\ud83dy"])
def test_lone_surrogates_are_replaced_like_tiktoken(encoding: str, text: str) -> None:
    expected = reference_encoding(encoding).encode_ordinary(text)
    assert _core.encode(text, encoding) == expected
    assert _core.count_tokens(text, encoding) == len(expected)
    assert _core.count_tokens_batch([text], encoding) == [len(expected)]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_special_tokens_are_tiktokens(encoding: str) -> None:
    reference = reference_encoding(encoding)
    assert _core.special_tokens(encoding) == reference._special_tokens
    for text, token in _core.special_tokens(encoding).items():
        assert _core.encode(text, encoding, allowed_special={text}) == [token]
        assert _core.encode(text, encoding) == reference.encode_ordinary(text)
        assert _core.decode([token], encoding) == text
    batch = _core.encode_batch(["a<|endoftext|>", "<|endoftext|>b"], encoding, allowed_special="all")
    assert batch == [reference.encode(t, allowed_special="all") for t in ["a<|endoftext|>", "<|endoftext|>b"]]


def test_encodings_are_listed_and_load_eagerly() -> None:
    assert _core.ENCODINGS == ENCODINGS
    for encoding in ENCODINGS:
        _core.load_encoding(encoding)
    with pytest.raises(ValueError, match="expected one of cl100k_base, o200k_base"):
        _core.load_encoding("r50k_base")


FIRST_USE = """
import json
from pathlib import Path
from gateway import _core

def status(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) * 1024

def read_only_resident():
    # The resident bytes of _core's read-only data mappings, which hold the embedded vocabulary tables.
    total, ours = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:
            ours = fields[1] == "r--p" and fields[-1].endswith(Path(_core.__file__).name)
        elif ours and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total

text = "Hello, world! Ñandú 漢字 🙂 1234567 " * 40
anonymous = {"start": status("RssAnon")}
counts = {}
for encoding in _core.ENCODINGS:
    counts[encoding] = _core.count_tokens(text, encoding)
    anonymous[encoding] = status("RssAnon")
print(json.dumps({
    "anonymous": anonymous,
    "read_only_resident": read_only_resident(),
    "same_counts": {e: _core.count_tokens(text, e) for e in _core.ENCODINGS} == counts,
}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self")
def test_a_vocabulary_loads_at_its_first_use_and_its_serialized_tables_leave_the_resident_set() -> None:
    # A fresh process: in this one, other tests have loaded both vocabularies already.
    done = subprocess.run([sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(done.stdout)
    anonymous = result["anonymous"]
    # Nothing loaded at import: each first count builds its encoding (cl100k_base ~8 MB, o200k_base ~17 MB).
    assert anonymous["cl100k_base"] - anonymous["start"] > 4 * 2**20
    assert anonymous["o200k_base"] - anonymous["cl100k_base"] > 8 * 2**20
    # Loading read every page of the embedded tables (cl100k_base 6 MB, o200k_base 12 MB); they were released after.
    assert result["read_only_resident"] < 4 * 2**20
    assert result["same_counts"]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: _core.encode("x", "o200k_base", allowed_special={"<|fim_prefix|>"}), "not a special token of o200k"),
        (lambda: _core.count_tokens_batch("one str", "o200k_base"), "sequence of str, not one str"),
        (lambda: _core.encode_batch(["x"], "cl100k_base", allowed_special="none"), 'allowed_special takes "all"'),
        (lambda: _core.special_tokens("gpt2"), 'unknown encoding "gpt2"'),
        (lambda: _core.decode([100_256], "cl100k_base"), "token id 100256 is not in cl100k_base"),
    ],
)
def test_more_bad_arguments_raise_value_error(call: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        call()  # type: ignore[operator]


def test_batch_items_must_be_str() -> None:
    with pytest.raises(TypeError):
        _core.count_tokens_batch(["ok", 3], "o200k_base")  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _core.count_chat_tokens([("user", "", b"bytes")], "o200k_base")  # type: ignore[list-item]


def test_chat_framing_of_o200k_matches_openai_cookbook() -> None:
    # The cookbook gives 124 prompt tokens for the same example on gpt-4o and gpt-4o-mini (o200k_base).
    assert _core.count_chat_tokens(COOKBOOK_MESSAGES, "o200k_base") == 124
    assert _core.count_chat_tokens(tuple(COOKBOOK_MESSAGES), "o200k_base", 3, 1, 3) == 124
    assert _core.count_chat_tokens([], "o200k_base") == 3
