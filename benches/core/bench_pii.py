"""PII scanning of ~1 MB of chat-like text with sparse PII: gateway._core.PiiScanner against Python's `re` running
the same patterns (plus the Luhn check) in the same run. Presidio is not run here: its analyzer needs spaCy models,
which cannot be downloaded on this machine.

    pytest benches/core/bench_pii.py --benchmark-enable
"""

from __future__ import annotations

import random
import re

from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import PiiScanner
from tests.core.pii_corpus import build_corpus

# The same patterns as rust/src/pii.rs, in Python's syntax.
PATTERNS = [
    r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}",
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}",
    r"(?:\(\d{3}\)\s?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b",
    r"\b\d{10}\b",
    r"\b(?:\d[ -]?){12,18}\d\b",
    r"\b\d{3}-\d{2}-\d{4}\b",
    r"\b\d{3} \d{2} \d{4}\b|\b\d{9}\b",
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
    r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
    r"(?i)\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2})\b",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
    r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
    r"\b(?:sk-(?:proj-|ant-(?:api\d{2}-)?)?[A-Za-z0-9_-]{20,}|(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})",
]
COMPILED = [re.compile(p) for p in PATTERNS]


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def python_scan(text: str) -> list[tuple[int, int]]:
    found = []
    for index, pattern in enumerate(COMPILED):
        for m in pattern.finditer(text):
            if index == 4 and not luhn(re.sub(r"\D", "", m.group())):
                continue
            found.append(m.span())
    return found


def _text(size: int = 1_000_000) -> str:
    rng = random.Random(3)
    chat = (
        "Thanks, that worked. Can you also explain how the retry budget interacts with the deadline? "
        "I would like the summary in three bullet points, and please keep it short. "
        "Here is the stack trace from the failing job, it mentions a timeout in the upstream call. "
    )
    pii = [s.text for s in build_corpus(seed=5, per_kind=20) if s.spans]
    parts: list[str] = []
    total = 0
    while total < size:
        part = rng.choice(pii) + " " if rng.random() < 0.02 else chat
        parts.append(part)
        total += len(part)
    return "".join(parts)


TEXT = _text()
MEGABYTES = len(TEXT.encode()) / 1e6


def test_scan_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "scan ~1 MB chat-like text, one thread"
    scanner = PiiScanner()
    found = benchmark.pedantic(scanner.scan, args=(TEXT,), rounds=10, warmup_rounds=1)
    assert found
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(MEGABYTES / benchmark.stats["median"], 1)


def test_scan_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "scan ~1 MB chat-like text, one thread"
    found = benchmark.pedantic(python_scan, args=(TEXT,), rounds=3, warmup_rounds=1)
    assert found
    if benchmark.stats is not None:
        benchmark.extra_info["MB/s"] = round(MEGABYTES / benchmark.stats["median"], 1)


def test_scan_short_message_rust(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "scan one 300-char chat message"
    scanner = PiiScanner()
    benchmark(scanner.scan, TEXT[:300])


def test_scan_short_message_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = "scan one 300-char chat message"
    benchmark(python_scan, TEXT[:300])
