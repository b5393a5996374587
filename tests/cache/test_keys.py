"""Request fingerprints as functions: what makes two requests one cache entry, what makes them share a semantic
context, and what never enters either. test_exact_cache_api.py holds the same through the gateway."""

from __future__ import annotations

import dataclasses
import re

import pytest

from gateway.cache.keys import Fingerprint, embedding_ids, fingerprint
from gateway.chat import ChatRequest, ImagePart, Message, ResponseFormat, Tool, ToolCall
from gateway.embeddings import EmbeddingEncoding, EmbedRequest

PARTITION = ("shop", "", "fast")


def request(*messages: Message, **params: object) -> ChatRequest:
    return ChatRequest(model="fast", messages=list(messages) or [Message("user", "hello")], **params)  # type: ignore[arg-type]


def test_a_request_is_fingerprinted_by_its_context_and_its_last_user_turn() -> None:
    found = fingerprint(request(Message("system", "be brief"), Message("user", "hello")), PARTITION)
    assert re.fullmatch(r"[0-9a-f]{32}", found.exact)
    assert re.fullmatch(r"[0-9a-f]{32}", found.context)
    assert found.prompt == "hello"
    assert found.exact != found.context
    again = fingerprint(request(Message("system", "be brief"), Message("user", "hello")), PARTITION)
    assert again == found
    other_prompt = fingerprint(request(Message("system", "be brief"), Message("user", "hi")), PARTITION)
    assert other_prompt.context == found.context  # the same context: a semantic match is searched there
    assert other_prompt.exact != found.exact
    other_context = fingerprint(request(Message("system", "be long"), Message("user", "hello")), PARTITION)
    assert other_context.context != found.context
    assert other_context.exact != found.exact


@pytest.mark.parametrize(
    "last",
    [
        Message("assistant", "hello"),
        Message("user", "look", parts=("look", ImagePart(url="https://example.com/a.png"))),
        Message("user", "", tool_calls=(ToolCall("c1", "f", "{}"),)),
        Message("tool", "42", tool_call_id="c1"),
    ],
)
def test_a_last_turn_that_is_not_plain_user_text_has_no_prompt_and_stays_in_the_context(last: Message) -> None:
    found = fingerprint(request(Message("user", "q"), last), PARTITION)
    assert found == Fingerprint(found.context, found.context, "")
    other_last = dataclasses.replace(last, content=last.content + " more")
    assert fingerprint(request(Message("user", "q"), other_last), PARTITION).context != found.context


def test_every_earlier_turn_enters_the_context() -> None:
    turns = [Message("system", "be brief"), Message("user", "a"), Message("assistant", "b"), Message("user", "c")]
    found = fingerprint(request(*turns), PARTITION)
    for i in range(3):
        changed = list(turns)
        changed[i] = dataclasses.replace(turns[i], content=turns[i].content + "!")
        assert fingerprint(request(*changed), PARTITION).context != found.context


@pytest.mark.parametrize(
    "change",
    [
        {"max_tokens": 10},
        {"temperature": 0.5},
        {"top_p": 0.9},
        {"stop": ["\n"]},
        {"seed": 7},
        {"tools": [Tool("f", "does f", {"type": "object"})]},
        {"tool_choice": "required"},
        {"response_format": ResponseFormat("json_object")},
    ],
)
def test_every_answer_changing_parameter_changes_both_fingerprints(change: dict[str, object]) -> None:
    base = fingerprint(request(), PARTITION)
    changed = fingerprint(request(**change), PARTITION)
    assert changed.exact != base.exact
    assert changed.context != base.context
    assert changed.prompt == base.prompt


@pytest.mark.parametrize("partition", [("other", "", "fast"), ("shop", "ns", "fast"), ("shop", "", "smart")])
def test_teams_namespaces_and_models_never_share_a_fingerprint(partition: tuple[str, str, str]) -> None:
    base = fingerprint(request(), PARTITION)
    moved = fingerprint(request(), partition)
    assert moved.exact != base.exact
    assert moved.context != base.context


def test_the_callers_user_metadata_and_model_name_in_the_request_do_not_change_it() -> None:
    base = fingerprint(request(), PARTITION)
    labelled = dataclasses.replace(request(user="alice", metadata={"trace": "1"}), model="alias")
    assert fingerprint(labelled, PARTITION) == base


def test_a_tools_schema_in_another_key_order_is_the_same_request() -> None:
    one = Tool("f", "", {"type": "object", "properties": {"a": {"type": "string"}}})
    two = Tool("f", "", {"properties": {"a": {"type": "string"}}, "type": "object"})
    assert fingerprint(request(tools=[one]), PARTITION) == fingerprint(request(tools=[two]), PARTITION)


def test_inline_image_bytes_enter_the_fingerprint_by_their_content() -> None:
    def with_image(data: bytes) -> Fingerprint:
        image = ImagePart(data=data, mime_type="image/png")
        return fingerprint(request(Message("user", "", parts=("what is it?", image)), Message("user", "hi")), PARTITION)

    assert with_image(b"\x89PNG one") == with_image(b"\x89PNG one")
    assert with_image(b"\x89PNG one").context != with_image(b"\x89PNG two").context


def test_a_value_that_has_no_json_form_is_refused_not_fingerprinted_as_null() -> None:
    odd = Tool("f", "", {"enum": {"a", "b"}})  # a set: never what a validated request holds
    with pytest.raises(TypeError) as caught:
        fingerprint(request(tools=[odd]), PARTITION)
    assert str(caught.value.__cause__) == "cannot fingerprint set"


def test_a_fingerprint_is_the_same_from_one_release_to_the_next() -> None:
    """Entries outlive the process that stored them (a shared Redis cache, an upgrade rolling across instances): a
    change to how requests are fingerprinted turns every stored entry into a miss. Change these values only on
    purpose, and say so in the release notes."""
    image = ImagePart(data=b"\x89PNG one", mime_type="image/png")
    found = fingerprint(request(Message("user", "", parts=("what is it?", image)), Message("user", "hi")), PARTITION)
    assert found == Fingerprint("f0c7a1dd0eaf2fc48215fe91d6930640", "8f24d3a1853cbd576553c307b47edc10", "hi")


def test_an_embedding_cache_id_is_the_same_from_one_release_to_the_next() -> None:
    """As for fingerprints: a change turns every stored embedding into a miss."""
    embedded = EmbedRequest(model="embed", inputs=["hello", "world"], dimensions=256)
    assert embedding_ids(embedded, PARTITION) == [
        "95f2651f4883aa4c6245e3d80c70fb17",
        "ddf7b39179b5eed0aadd30af8192f135",
    ]


def test_embedding_inputs_get_one_id_each_by_partition_length_and_text() -> None:
    def ids(*inputs: str, dimensions: int | None = None, partition: tuple[str, str, str] = PARTITION) -> list[str]:
        return embedding_ids(EmbedRequest(model="embed", inputs=list(inputs), dimensions=dimensions), partition)

    first, second = ids("a", "b")
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert ids("b", "a") == [second, first]  # an input's id is its own, wherever it stands
    assert ids("a", dimensions=256) != [first]
    assert ids("a", partition=("other", "", "fast")) != [first]
    encoded = EmbedRequest(model="embed", inputs=["a"], encoding=EmbeddingEncoding.BASE64, user="u")
    assert embedding_ids(encoded, PARTITION) == [first]  # the form asked for is not in it
    assert ids() == []


def test_marking_a_message_untrusted_changes_no_fingerprint() -> None:
    """The mark tells the injection guard how to read a message; the provider sees the same request either way."""
    document = "Retrieved: the launch moved to May."
    plain = request(Message("tool", document, tool_call_id="t1"), Message("user", "When is the launch?"))
    marked = request(
        Message("tool", document, tool_call_id="t1", untrusted=True), Message("user", "When is the launch?")
    )
    assert fingerprint(marked, PARTITION) == fingerprint(plain, PARTITION)
