"""The output guard: whole and streamed answers agree; an item split across chunks at any point is caught; no more
than the window is held back; confidential markers; block policies; placeholders restored."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.chat import ChatResult, ToolCall
from gateway.config.guardrails import OutputPolicy
from gateway.errors import ErrorKind, PermissionDenied
from gateway.policy.guardrails import GuardrailAction, OutputGuard
from gateway.policy.guardrails.pii import PII_STREAM_HOLD_CHARS

EMAIL = "jane.doe@example.com"
GITHUB_TOKEN = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A"
ANSWER = f"Sure. Write to {EMAIL} and use the token {GITHUB_TOKEN} for the API; the codename is PROJECT-ZEUS, ok?"
EXPECTED = "Sure. Write to <EMAIL_1> and use the token <SECRET_1> for the API; the codename is [CONFIDENTIAL], ok?"


def _guard(**raw: object) -> OutputGuard:
    policy = {"pii": {"default": "redact"}, "confidential": {"strings": ["PROJECT-ZEUS"]}} | raw
    return OutputGuard(OutputPolicy.model_validate(policy))


def _streamed(guard: OutputGuard, chunks: list[str], mapping: dict[str, str] | None = None) -> str:
    stream = guard.stream(mapping=mapping)
    return "".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


def test_unary_redacts_pii_secrets_and_markers() -> None:
    outcome = _guard().check(ANSWER)
    assert outcome.text == EXPECTED
    assert set(outcome.actions) == {
        GuardrailAction("output", "pii", "EMAIL_ADDRESS", "redact", 1),
        GuardrailAction("output", "secret", "SECRET", "redact", 1),
        GuardrailAction("output", "marker", "CONFIDENTIAL_MARKER", "redact", 1),
    }


def test_default_output_policy_redacts_secrets_only() -> None:
    outcome = OutputGuard(OutputPolicy()).check(ANSWER)
    assert outcome.text == ANSWER.replace(GITHUB_TOKEN, "<SECRET_1>")


@pytest.mark.parametrize("item", [EMAIL, GITHUB_TOKEN, "PROJECT-ZEUS"])
def test_an_item_split_at_every_point_is_caught(item: str) -> None:
    guard = _guard()
    start = ANSWER.index(item)
    for cut in range(start, start + len(item) + 1):
        assert _streamed(guard, [ANSWER[:cut], ANSWER[cut:]]) == EXPECTED, f"split at {cut - start}"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11, 16, 20])
def test_small_chunks_give_the_unary_result(size: int) -> None:
    chunks = [ANSWER[i : i + size] for i in range(0, len(ANSWER), size)]
    assert _streamed(_guard(), chunks) == EXPECTED


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_any_chunking_gives_the_unary_result(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(ANSWER)]
    chunks = [ANSWER[a:b] for a, b in itertools.pairwise(points)]
    assert _streamed(_guard(), chunks) == EXPECTED


def test_stream_holds_back_no_more_than_the_window() -> None:
    guard = _guard()
    stream = guard.stream()
    prose = "The weather is mild and the river runs slowly past the old mill near town. " * 20
    released = 0
    fed = 0
    for i in range(0, len(prose), 9):
        released += len(stream.feed(prose[i : i + 9]))
        fed += len(prose[i : i + 9])
        assert fed - released <= guard.max_hold
        assert stream.held <= guard.max_hold
    assert guard.max_hold == len("PROJECT-ZEUS") - 1 + PII_STREAM_HOLD_CHARS
    assert released + len(stream.finish()) == len(prose)


def test_patterns_with_a_window() -> None:
    guard = _guard(confidential={"patterns": [r"ACME-\d{4,8}"], "window": 16, "replacement": "[X]"})
    text = "ids: ACME-1234567 and ACME-99 end"
    for cut in range(len(text) + 1):
        assert _streamed(guard, [text[:cut], text[cut:]]) == "ids: [X] and ACME-99 end"


def test_case_insensitive_marker_strings() -> None:
    assert _guard().check("see project-zeus docs").text == "see [CONFIDENTIAL] docs"


def test_restores_the_prompt_placeholders_in_a_stream() -> None:
    mapping = {"<EMAIL_1>": EMAIL, "<PHONE_1>": "+1 415 555 0100"}
    answer = "I emailed <EMAIL_1> and will call <PHONE_1>; also reach ops@corp.example."
    expected = f"I emailed {EMAIL} and will call +1 415 555 0100; also reach <EMAIL_2>."
    guard = _guard()
    assert guard.check(answer, mapping=mapping).text == expected
    for cut in range(len(answer) + 1):
        assert _streamed(guard, [answer[:cut], answer[cut:]], mapping) == expected


def test_restores_even_when_output_pii_is_allowed() -> None:
    guard = OutputGuard(OutputPolicy.model_validate({"pii": {"default": "allow"}, "secrets": "allow"}))
    outcome = guard.check("hi <EMAIL_1>, me@x.example", mapping={"<EMAIL_1>": EMAIL})
    assert outcome.text == f"hi {EMAIL}, me@x.example"
    assert outcome.actions == ()


def test_secrets_mask() -> None:
    guard = OutputGuard(OutputPolicy.model_validate({"secrets": "mask"}))
    assert guard.check(f"token {GITHUB_TOKEN}.").text == "token " + "*" * len(GITHUB_TOKEN) + "."


def test_blocked_kind_raises_and_is_never_released() -> None:
    guard = OutputGuard(OutputPolicy.model_validate({"secrets": "block"}))
    stream = guard.stream()
    text = "Here is the token: " + GITHUB_TOKEN + " and then a long explanation of what it does follows. " * 4
    released: list[str] = []

    def feed_all() -> None:
        for i in range(0, len(text), 10):
            released.append(stream.feed(text[i : i + 10]))  # noqa: PERF401 - keeps what left before the raise
        released.append(stream.finish())

    with pytest.raises(PermissionDenied) as caught:
        feed_all()
    assert caught.value.kind is ErrorKind.PERMISSION_DENIED
    assert caught.value.reason == "OUTPUT_BLOCKED"
    assert caught.value.metadata == {"entity_types": "SECRET"}
    # It raised as soon as the token was found, before releasing the rest; the token itself never left.
    assert len(released) < len(text) // 10
    assert GITHUB_TOKEN[:4] not in "".join(released)
    with pytest.raises(PermissionDenied, match="SECRET"):
        guard.check(f"token {GITHUB_TOKEN}")


def test_blocked_marker_raises() -> None:
    guard = _guard(confidential={"strings": ["INTERNAL ONLY"], "action": "block"})
    stream = guard.stream()
    released = stream.feed("This memo is inter")
    with pytest.raises(PermissionDenied) as caught:
        stream.feed("nal only, do not share.")
    assert caught.value.reason == "CONFIDENTIAL_MARKER"
    assert "inter" not in released.lower()


def test_check_result_covers_tool_call_arguments() -> None:
    result = ChatResult(
        upstream_id="r1",
        upstream_model="m",
        text="Sending to <EMAIL_1>.",
        finish_reason="tool_calls",
        usage=None,
        tool_calls=[ToolCall("c1", "send", '{"to": "<EMAIL_1>", "auth": "' + GITHUB_TOKEN + '"}')],
    )
    outcome = _guard().check_result(result, mapping={"<EMAIL_1>": EMAIL})
    assert result.text == outcome.text == f"Sending to {EMAIL}."
    assert result.tool_calls[0].arguments_json == f'{{"to": "{EMAIL}", "auth": "<SECRET_1>"}}'
    assert GuardrailAction("output", "secret", "SECRET", "redact", 1) in outcome.actions


def test_actions_accumulate_over_a_stream() -> None:
    stream = _guard().stream()
    stream.feed(f"a {EMAIL} b ")
    stream.feed(f"c {EMAIL.replace('jane', 'john')} d")
    stream.finish()
    assert stream.actions == (GuardrailAction("output", "pii", "EMAIL_ADDRESS", "redact", 2),)
