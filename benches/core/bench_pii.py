"""PII scanning of ~1 MB of chat-like text with sparse PII: gateway._core.PiiScanner against Python's `re` running the
same patterns with the same validators (Luhn, SSN rules, IBAN mod-97, octets, calendar dates, phone shapes), and
Presidio's pattern recognizers when presidio-analyzer is installed (it runs without spaCy models: only its regex
recognizers are called). One thread each, same run.

    pytest benches/core/bench_pii.py --benchmark-enable --benchmark-columns=min,median,max
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import re
from collections.abc import Callable
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import PiiScanner
from tests.core.test_pii import CORPUS, KINDS, luhn_ok

# ---------------------------------------------------------------------------------------------------------------------
# The reference: rust/src/pii/patterns.rs's patterns in Python syntax, with its validators (context scoring left out,
# which only flatters the reference).

MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
PATTERNS: dict[str, str] = {
    "EMAIL_ADDRESS": rf"[A-Za-z0-9._%+\-]{{1,64}}@{LABEL}(?:\.{LABEL})*\.[A-Za-z]{{2,24}}",
    "PHONE_NUMBER": r"\+?\(?[0-9]{1,15}\)?(?:[ .\-]?\(?[0-9]{1,15}\)?){0,11}",
    "CREDIT_CARD": (
        r"[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]{1,7}|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}|[0-9]{13,19}"
    ),
    "US_SSN": r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9}",
    "IBAN_CODE": r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?",
    "IP_ADDRESS": r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}",
    "DATE_OF_BIRTH": (
        r"[0-9]{4}[\-/.][0-9]{1,2}[\-/.][0-9]{1,2}|[0-9]{1,2}[\-/.][0-9]{1,2}[\-/.][0-9]{2,4}"
        rf"|(?i:{MONTH}) [0-9]{{1,2}}(?i:st|nd|rd|th)?,? [0-9]{{4}}"
        rf"|[0-9]{{1,2}}(?i:st|nd|rd|th)? (?i:of )?(?i:{MONTH}),? [0-9]{{4}}"
    ),
    "SECRET": (
        r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}"
        r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{8,}"
        r"|sk-[A-Za-z0-9_\-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{36,255}"
        r"|github_pat_[A-Za-z0-9_]{22,255}|xox[bpars]-[A-Za-z0-9\-]{10,}|AIza[A-Za-z0-9_\-]{35}"
        r"|glpat-[A-Za-z0-9_\-]{20,}"
        r"|-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
    ),
}
COMPILED = {kind: re.compile(p) for kind, p in PATTERNS.items()}
IBAN_LENGTHS = {"DE": 22, "GB": 22, "FR": 27, "NL": 18, "ES": 24, "IT": 27, "CH": 21, "AT": 20, "BE": 16, "PL": 28}


def _card(s: str) -> bool:
    d = re.sub(r"\D", "", s)
    return 13 <= len(d) <= 19 and d[0] in "23456" and luhn_ok(d)


def _ssn(s: str) -> bool:
    d = re.sub(r"\D", "", s)
    area, group, serial = int(d[:3]), int(d[3:5]), int(d[5:])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


def _iban(s: str) -> bool:
    c = s.replace(" ", "")
    if IBAN_LENGTHS.get(c[:2]) != len(c):
        return False
    return int("".join(str(int(ch, 36)) for ch in c[4:] + c[:4])) % 97 == 1


def _ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _date(s: str) -> bool:
    nums = [int(n) for n in re.findall(r"\d+", s)]
    if len(nums) == 3:
        y, m, d = (nums[0], nums[1], nums[2]) if nums[0] > 31 else (nums[2], nums[0], nums[1])
        for mm, dd in ((m, d), (d, m)):
            try:
                dt.date(y, mm, dd)
            except ValueError:
                continue
            return 1900 <= y <= 2026
    return len(nums) == 2 and 1900 <= nums[1] <= 2026


def _phone(s: str) -> bool:
    groups = re.findall(r"\d+", s)
    n = sum(len(g) for g in groups)
    if s.startswith("+"):
        return 8 <= n <= 15
    lens = [len(g) for g in groups]
    return lens in ([3, 3, 4], [1, 3, 3, 4]) or (s.startswith("0") and 10 <= n <= 11 and 2 <= len(groups) <= 5)


VALIDATORS: dict[str, Callable[[str], bool]] = {
    "EMAIL_ADDRESS": lambda s: ".." not in s,
    "PHONE_NUMBER": _phone,
    "CREDIT_CARD": _card,
    "US_SSN": _ssn,
    "IBAN_CODE": _iban,
    "IP_ADDRESS": _ip,
    "DATE_OF_BIRTH": _date,
    "SECRET": lambda s: True,
}


def python_scan(text: str) -> list[tuple[int, int, str]]:
    found: list[tuple[int, int, str]] = []
    for kind, pattern in COMPILED.items():
        check = VALIDATORS[kind]
        found.extend((m.start(), m.end(), kind) for m in pattern.finditer(text) if check(m.group()))
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Presidio (optional): its pattern recognizers for the kinds it has, called directly without an NLP engine.


def presidio_scanner() -> Callable[[str], list[Any]] | None:
    try:
        import tldextract.tldextract as tld
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )
    except ImportError:
        return None
    tld.TLD_EXTRACTOR.suffix_list_urls = ()  # offline: the bundled public-suffix snapshot
    recognizers = [
        CreditCardRecognizer(),
        EmailRecognizer(),
        IbanRecognizer(),
        IpRecognizer(),
        PhoneRecognizer(),
        UsSsnRecognizer(),
    ]

    def scan(text: str) -> list[Any]:
        out: list[Any] = []
        for r in recognizers:
            out += r.analyze(text, r.supported_entities, None)
        return out

    return scan


# ---------------------------------------------------------------------------------------------------------------------
# The text: varied chat sentences (with the numbers chat has: counts, years, versions, times), ~2% PII messages.

CHAT = [
    "Thanks, that worked. Can you also explain how the retry budget interacts with the deadline?",
    "I would like the summary in three bullet points, and please keep it short.",
    "Here is the stack trace from the failing job, it mentions a timeout in the upstream call.",
    "We migrated 12 services last quarter and the p99 latency dropped by 30 percent.",
    "Could you rewrite this paragraph so it sounds less formal?",
    "The meeting moved to Thursday at 3pm, can you update the invite text?",
    "What is the difference between a mutex and a semaphore, with an example in Rust?",
    "Please translate the following into German: the order will arrive within 5 business days.",
    "My build fails after upgrading to version 2.4 of the library, any idea why?",
    "List the pros and cons of storing embeddings in Postgres versus a dedicated vector store.",
    "In 2023 we had 4 outages; write a short postmortem template we can reuse.",
    "Summarise the attached notes: budget, hiring plan, and the roadmap for Q3.",
]


def chat_text(size: int = 1_000_000, seed: int = 3, pii_rate: float = 0.02) -> str:
    rng = random.Random(seed)
    pii = [s.text for s in CORPUS if s.spans]
    parts: list[str] = []
    total = 0
    while total < size:
        part = rng.choice(pii) if rng.random() < pii_rate else rng.choice(CHAT)
        parts.append(part + " ")
        total += len(part) + 1
    return "".join(parts)


TEXT = chat_text()
MEGABYTES = len(TEXT.encode()) / 1e6
GROUP_MB = "scan ~1 MB chat-like text (2% PII messages), one thread"
GROUP_MSG = "scan one 300-char chat message"
GROUP_STREAM = "stream: redact 1 kB answer in 16-char chunks"


def _record(benchmark: BenchmarkFixture) -> None:
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(MEGABYTES / benchmark.stats["median"], 1)


def test_scan_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_MB
    scanner = PiiScanner()
    found = benchmark.pedantic(scanner.scan, args=(TEXT,), rounds=15, warmup_rounds=2)
    assert len(found) > 100
    _record(benchmark)


def test_scan_clean_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_MB
    scanner = PiiScanner()
    clean = chat_text(seed=4, pii_rate=0.0)
    found = benchmark.pedantic(scanner.scan, args=(clean,), rounds=15, warmup_rounds=2)
    assert found == []
    _record(benchmark)


def test_scan_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_MB
    found = benchmark.pedantic(python_scan, args=(TEXT,), rounds=3, warmup_rounds=1)
    assert len(found) > 100
    _record(benchmark)


def test_scan_presidio(benchmark: BenchmarkFixture) -> None:
    scan = presidio_scanner()
    if scan is None:
        pytest.skip("presidio-analyzer is not installed (pip install presidio-analyzer; no spaCy model needed)")
    benchmark.group = GROUP_MB
    sample = TEXT[:100_000]  # Presidio is ~0.1 MB/s: 100 kB keeps the run short; MB/s is scaled to the sample
    found = benchmark.pedantic(scan, args=(sample,), rounds=1, warmup_rounds=0)
    assert found
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(len(sample.encode()) / 1e6 / benchmark.stats["median"], 2)


def test_scan_message_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_MSG
    benchmark(PiiScanner().scan, CORPUS[0].text.ljust(300, "."))


def test_scan_message_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_MSG
    benchmark(python_scan, CORPUS[0].text.ljust(300, "."))


ANSWER = (TEXT[:1000] + " mail jane@example.com")[:1000]
CHUNKS = [ANSWER[i : i + 16] for i in range(0, len(ANSWER), 16)]


def _stream_rust() -> str:
    stream = PiiScanner().stream()
    return "".join(stream.push(c) for c in CHUNKS) + stream.finish()


def _stream_python() -> str:
    # The same hold-back scheme in Python: rescan the held window plus the new chunk at every chunk.
    out, held = [], ""
    for c in CHUNKS:
        held += c
        python_scan(held)
        out.append(held[:-128])
        held = held[-128:]
    python_scan(held)
    return "".join(out) + held


def test_stream_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_STREAM
    out = benchmark(_stream_rust)
    assert "jane@example.com" not in out
    if benchmark.stats is not None:
        benchmark.extra_info["us/chunk"] = round(benchmark.stats["median"] / len(CHUNKS) * 1e6, 2)


def test_stream_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_STREAM
    benchmark(_stream_python)
    if benchmark.stats is not None:
        benchmark.extra_info["us/chunk"] = round(benchmark.stats["median"] / len(CHUNKS) * 1e6, 2)


def test_reference_agrees_on_the_corpus() -> None:
    """The Python reference finds (nearly) every corpus item: it is a like-for-like workload, not a strawman."""
    found = {(s.text, *span) for s in CORPUS for span in python_scan(s.text)}
    gold = {(s.text, *span) for s in CORPUS for span in s.spans}
    assert len(gold & found) / len(gold) > 0.8
    assert set(KINDS) == set(PATTERNS)
