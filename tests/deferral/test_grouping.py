"""Which held calls share a prefix, and how a released group is split."""

from __future__ import annotations

from gateway.chat import ChatRequest, Message, Tool
from gateway.deferral.grouping import prefix_key, waves


def request(*messages: tuple[str, str], tools: list[Tool] | None = None) -> ChatRequest:
    return ChatRequest("m", [Message(role, text) for role, text in messages], tools=tools or [])


def test_calls_differing_only_in_their_last_message_share_a_prefix() -> None:
    a = request(("system", "grade essays"), ("user", "essay one"))
    b = request(("system", "grade essays"), ("user", "essay two"))
    c = request(("system", "grade poems"), ("user", "essay one"))
    assert prefix_key(a) == prefix_key(b) != prefix_key(c)


def test_tools_are_part_of_the_prefix_and_a_lone_message_has_none() -> None:
    assert prefix_key(request(("user", "hi"))) == ""
    tool = Tool("lookup", "finds a record")
    assert prefix_key(request(("user", "hi"), tools=[tool])) != ""
    assert prefix_key(request(("user", "a"), tools=[tool])) == prefix_key(request(("user", "b"), tools=[tool]))


def test_a_group_splits_into_calls_at_once_and_a_leader_with_its_followers_per_shared_prefix() -> None:
    held = [("x", 1), ("", 2), ("y", 3), ("x", 4), ("x", 5), ("", 6)]
    at_once, chains = waves(held, lambda item: item[0])
    assert at_once == [("", 2), ("", 6), ("y", 3)]  # a prefix only one call has goes at once
    assert chains == [(("x", 1), [("x", 4), ("x", 5)])]
