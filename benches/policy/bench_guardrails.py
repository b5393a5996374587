"""Guardrails' added latency: the input guard with every policy on for a ~2,000-token prompt, and streaming output
scanning per chunk (5-20 characters), each group with its references in the same run.

    pytest benches/policy/bench_guardrails.py --benchmark-enable --benchmark-columns=min,median,max -s

Each test also records p99 (and, for streams, per-chunk figures) in extra_info and prints them with -s.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable

from pytest_benchmark.fixture import BenchmarkFixture

from gateway._core import LinearTextModel
from gateway.chat import ChatRequest, Message
from gateway.config.guardrails import GuardrailsConfig
from gateway.policy.guardrails import InjectionScorer, InputGuard, OutputGuard, pii
from gateway.policy.guardrails.content import ContentRuleChecker
from gateway.policy.guardrails.injection import _MODEL_FILE, _PATTERNS, _normalize, model_input
from gateway.policy.guardrails.injection_minilm import shared_head
from gateway.tokens import TokenCounter
from tests.policy.guardrails import injection_corpus

GROUP_INPUT = "input guard: ~2,000-token prompt, every policy on"
GROUP_INJECTION = "injection scorer: ~2,000-token prompt, learned model and phrasings against phrasings alone"
GROUP_DENSE = "injection scorer: ~2,000 tokens of attacks or of talk about attacks"
GROUP_STREAM = "output stream: 1.5 kB answer in 5-20 char chunks"

SENTENCES = (
    "The quarterly review covers revenue, churn and the hiring plan for the next two quarters.",
    "Our support team closed 1,284 tickets last month, with a median first response of 3 hours.",
    "Please summarise the attached notes and list the open questions for the steering group.",
    "The migration to the new billing system is planned for March, after the freeze ends.",
    "Customers in the pilot asked for better export options and a simpler onboarding flow.",
    "Version 2.4.1 fixed the timeout in the sync job; 2.5 will add retries with backoff.",
    "We compared three vendors on price, latency and the quality of their documentation.",
    "The draft contract renews annually unless either party gives ninety days notice.",
    "Action items: update the roadmap, confirm the budget, and schedule the design review.",
    "Latency at p95 stayed under 180 ms for the search endpoint during the load test.",
)
PII_LINES = (
    "Contact Jane at jane.doe@example.com or +44 20 7946 0958 about the renewal.",
    "Ship the replacement to r.smith@example.org; the order ref is 77120-B.",
    "The customer's card 4111 1111 1111 1111 was charged twice on 12 March.",
)

POLICY = GuardrailsConfig.model_validate(
    {
        "input": {
            "pii": {"default": "redact", "CREDIT_CARD": "mask", "restore_in_output": True},
            "injection": {"action": "block", "threshold": 0.8},
            "content": {
                "blocked_keywords": ["project orion", "nda draft", "layoff list", "salary bands", "merger code"],
                "blocked_patterns": [r"\bACME-\d{4}\b", r"(?i)\binternal[- ]only\b"],
                "max_input_tokens": 8_000,
                "topics": {
                    "allowed": {"business": ["revenue", "customers", "contract", "support", "billing"]},
                    "blocked": {"medical": ["diagnosis", "prescription"], "legal advice": ["lawsuit", "sue"]},
                },
            },
        },
        "output": {
            "pii": {"default": "redact"},
            "secrets": "redact",
            "confidential": {"strings": ["PROJECT-ZEUS", "INTERNAL ONLY"], "patterns": [r"ACME-\d{4}"]},
        },
    }
)


def _prompt(rng: random.Random, target_tokens: int = 2_000) -> ChatRequest:
    counter = TokenCounter()
    lines: list[str] = []
    pii_tokens = counter.count_text(" ".join(PII_LINES), "gpt-4o").tokens
    while counter.count_text(" ".join(lines), "gpt-4o").tokens < target_tokens - pii_tokens - 30:
        lines.append(rng.choice(SENTENCES))
    # A few PII items spread through the prose.
    for i, line in enumerate(PII_LINES):
        lines.insert((i + 1) * len(lines) // (len(PII_LINES) + 1), line)
    user = " ".join(lines)
    messages = [Message("system", "You are a concise assistant for the operations team."), Message("user", user)]
    return ChatRequest(model="gpt-4o", messages=messages, text_chars=sum(len(m.content) for m in messages))


COUNTER = TokenCounter()
REQUEST = _prompt(random.Random(7))
PROMPT_TOKENS = COUNTER.count_chat(REQUEST.messages, "gpt-4o").tokens


def _count(request: ChatRequest) -> int:
    return COUNTER.count_chat(request.messages, request.model).tokens


def _p99(benchmark: BenchmarkFixture) -> None:
    if benchmark.stats is None:
        return
    data = sorted(benchmark.stats.stats.data)
    p99 = data[min(len(data) - 1, int(0.99 * len(data)))]
    benchmark.extra_info["p99_us"] = round(p99 * 1e6, 1)
    benchmark.extra_info["median_us"] = round(benchmark.stats.stats.median * 1e6, 1)
    print(f"\n{benchmark.name}: median {benchmark.extra_info['median_us']} us, p99 {benchmark.extra_info['p99_us']} us")


def _run(benchmark: BenchmarkFixture, fn: Callable[[], object], rounds: int = 2_000, warmup: int = 50) -> object:
    result = benchmark.pedantic(fn, rounds=rounds, warmup_rounds=warmup, iterations=1)
    _p99(benchmark)
    return result


def test_prompt_is_about_2000_tokens() -> None:
    assert 1_950 <= PROMPT_TOKENS <= 2_050
    outcome = InputGuard.from_config(POLICY, count_tokens=_count).check(REQUEST)
    assert outcome.found == {"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1, "CREDIT_CARD": 1}
    assert outcome.injection.score < 0.8


def test_input_guard_all_policies(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_INPUT
    guard = InputGuard.from_config(POLICY, count_tokens=_count)
    outcome = _run(benchmark, lambda: guard.check(REQUEST))
    assert outcome is not None


def test_input_guard_with_prompt_tokens_given(benchmark: BenchmarkFixture) -> None:
    """The pipeline already counts prompt tokens for the context window: passing them saves the guard's count."""
    benchmark.group = GROUP_INPUT
    guard = InputGuard.from_config(POLICY)
    _run(benchmark, lambda: guard.check(REQUEST, prompt_tokens=PROMPT_TOKENS))


def test_ref_bare_pii_scan(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_INPUT
    texts = [m.content for m in REQUEST.messages]
    _run(benchmark, lambda: pii.find_many(texts))


def test_ref_token_count(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_INPUT
    _run(benchmark, lambda: _count(REQUEST))


def test_injection_scorer(benchmark: BenchmarkFixture) -> None:
    """The shipped scorer: the learned model and the phrasings."""
    benchmark.group = GROUP_INJECTION
    scorer = InjectionScorer()
    text = REQUEST.messages[1].content
    _run(benchmark, lambda: scorer.score(text))


def test_injection_scorer_combined(benchmark: BenchmarkFixture) -> None:
    """The opt-in `combined` model (linear-2 stacked with a head over MiniLM) and the phrasings: MiniLM embeds the
    prompt's ~9 pieces of 254 tokens on every call (30 rounds: each is thousands of times the others)."""
    benchmark.group = GROUP_INJECTION
    scorer = InjectionScorer(minilm=shared_head())
    text = REQUEST.messages[1].content
    _run(benchmark, lambda: scorer.score(text), rounds=30, warmup=2)


def test_ref_injection_phrasings_alone(benchmark: BenchmarkFixture) -> None:
    """Today's scorer before the model: the phrasings alone, in the same run."""
    benchmark.group = GROUP_INJECTION
    scorer = InjectionScorer(learned=False)
    text = REQUEST.messages[1].content
    _run(benchmark, lambda: scorer.score(text))


def test_ref_injection_model_alone(benchmark: BenchmarkFixture) -> None:
    """The learned model's share: the Rust featurizer and dot products over every window of the prepared text."""
    benchmark.group = GROUP_INJECTION
    model = LinearTextModel(_MODEL_FILE.read_bytes())
    text = model_input(REQUEST.messages[1].content)
    _run(benchmark, lambda: model.score(text))


PYTHON_PATTERNS = [(p.name, p.weight, re.compile(p.source, re.MULTILINE)) for p in _PATTERNS]


def _python_injection(text: str) -> float:
    """The reference: the scorer's phrasings searched with Python's `re` instead of the Rust PatternSet (context
    rules left out, which only flatters the reference)."""
    low, signals = _normalize(text)
    weights = dict(signals) | {name: weight for name, weight, regex in PYTHON_PATTERNS if regex.search(low)}
    remaining = 1.0
    for weight in weights.values():
        remaining *= 1.0 - weight
    return 1.0 - remaining


def test_ref_injection_python_re(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_INPUT
    text = REQUEST.messages[1].content
    _run(benchmark, lambda: _python_injection(text), rounds=300)


def _dense(attack: bool, size: int = 9_000) -> str:
    """~2,000 tokens of the corpus's attacks, or of its benign look-alikes (talk about attacks): trigger-dense text."""
    pool = [s.text for s in injection_corpus.tuning() if s.attack is attack]
    text, i = "", 0
    while len(text) < size:
        text += pool[i % len(pool)] + "\n"
        i += 1
    return text


def test_injection_scorer_dense_lookalikes(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_DENSE
    scorer = InjectionScorer()
    text = _dense(attack=False)
    _run(benchmark, lambda: scorer.score(text), rounds=500)


def test_injection_scorer_dense_attacks(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_DENSE
    scorer = InjectionScorer()
    text = _dense(attack=True)
    _run(benchmark, lambda: scorer.score(text), rounds=500)


def test_ref_injection_python_re_dense_lookalikes(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_DENSE
    text = _dense(attack=False)
    _run(benchmark, lambda: _python_injection(text), rounds=100)


def test_ref_content_rules(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_INPUT
    checker = ContentRuleChecker(POLICY.input.content)
    texts = [REQUEST.messages[1].content]
    _run(benchmark, lambda: checker.check(texts, PROMPT_TOKENS))


# --- streaming -------------------------------------------------------------------------------------------------------

ANSWER_PARTS = (
    "Thanks for the details. I have drafted a reply to <EMAIL_1> below, and flagged the duplicate charge. ",
    "The renewal terms stay the same; the notice period is ninety days and the price rises by 3% in 2025. ",
    "If you need to reach the billing team, write to billing@vendor.example or call +1 415 555 0100. ",
    "Do not share the internal codename PROJECT-ZEUS with the customer. ",
)


def _answer(rng: random.Random, size: int = 1_500) -> str:
    text = ""
    while len(text) < size:
        text += rng.choice(ANSWER_PARTS)
    return text


ANSWER = _answer(random.Random(3))
MAPPING = {"<EMAIL_1>": "jane.doe@example.com"}


def _chunks(text: str, rng: random.Random) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.randint(5, 20)
        out.append(text[i : i + n])
        i += n
    return out


CHUNKS = _chunks(ANSWER, random.Random(5))


def _per_chunk(benchmark: BenchmarkFixture, make: Callable[[], Callable[[str], str]]) -> None:
    """Stream-level timing by pytest-benchmark, and per-chunk p50/p99 measured one feed at a time."""
    samples: list[float] = []
    for _ in range(200):
        feed = make()
        for chunk in CHUNKS:
            start = time.perf_counter_ns()
            feed(chunk)
            samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1_000
    p99 = samples[int(0.99 * len(samples))] / 1_000
    benchmark.extra_info.update(chunks=len(CHUNKS), chunk_p50_us=round(p50, 2), chunk_p99_us=round(p99, 2))
    print(f"\n{benchmark.name}: {len(CHUNKS)} chunks, per chunk p50 {p50:.2f} us, p99 {p99:.2f} us")


def test_output_stream_guard(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_STREAM
    guard = OutputGuard.from_config(POLICY)

    def run() -> str:
        stream = guard.stream(mapping=MAPPING)
        return "".join(stream.feed(c) for c in CHUNKS) + stream.finish()

    out = benchmark.pedantic(run, rounds=300, warmup_rounds=10)
    assert "PROJECT-ZEUS" not in out
    assert "billing@vendor.example" not in out
    assert "jane.doe@example.com" in out
    _per_chunk(benchmark, lambda: guard.stream(mapping=MAPPING).feed)


def test_ref_core_pii_stream_alone(benchmark: BenchmarkFixture) -> None:
    benchmark.group = GROUP_STREAM
    modes = pii.redaction_modes(POLICY.output.pii_actions())

    def run() -> str:
        stream = pii.stream(modes, MAPPING, restore=True)
        return "".join(stream.push(c) for c in CHUNKS) + stream.finish()

    benchmark.pedantic(run, rounds=300, warmup_rounds=10)
    _per_chunk(benchmark, lambda: pii.stream(modes, MAPPING, restore=True).push)


def test_ref_python_rescan_per_chunk(benchmark: BenchmarkFixture) -> None:
    """A naive stream scanner: Python regexes for markers, email and phone re-run over the last 256 characters on
    every chunk (what the carry-over window saves compared with rescanning)."""
    benchmark.group = GROUP_STREAM
    regex = re.compile(
        r"PROJECT-ZEUS|INTERNAL ONLY|ACME-\d{4}|[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}|\+?\d[\d ().\-]{7,}\d"
    )

    def make() -> Callable[[str], str]:
        buffer: list[str] = [""]

        def feed(chunk: str) -> str:
            text = buffer[0] + chunk
            text = regex.sub("[X]", text[-256:])
            buffer[0] = text
            return ""

        return feed

    def run() -> None:
        feed = make()
        for c in CHUNKS:
            feed(c)

    benchmark.pedantic(run, rounds=100, warmup_rounds=5)
    _per_chunk(benchmark, make)


def test_unary_output_check(benchmark: BenchmarkFixture) -> None:
    """The whole 1.5 kB answer at once (unary Chat), for comparison with the stream's total."""
    benchmark.group = GROUP_STREAM
    guard = OutputGuard.from_config(POLICY)
    _run(benchmark, lambda: guard.check(ANSWER, mapping=MAPPING), rounds=500)
