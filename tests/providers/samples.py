"""Sample chat requests and a stream assembler shared by the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gateway.chat import ChatDelta, ChatRequest, ImagePart, Message, ResponseFormat, Tool, ToolCall, Usage

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082"
)
WEATHER = Tool(
    name="get_weather",
    description="Current weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


def hello(**fields: Any) -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=[Message(role="system", content="Be brief."), Message(role="user", content="Say hello")],
        **fields,
    )


def scattered_system_and_repeated_roles() -> ChatRequest:
    """System messages between turns and two user turns in a row: what APIs wanting one system prompt and alternating
    roles (Anthropic Messages, Bedrock Converse) must reshape."""
    return ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="Rule one."),
            Message(role="user", content="First."),
            Message(role="user", content="Second."),
            Message(role="system", content="Rule two."),
            Message(role="assistant", content="Ok."),
            Message(role="user", content="Third."),
        ],
    )


def with_images() -> ChatRequest:
    return ChatRequest(
        model="m",
        messages=[
            Message(
                role="user",
                content="What is in these images?",
                parts=(
                    ImagePart(data=PNG, mime_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg", detail="low"),
                    "Answer in one word.",
                ),
            )
        ],
    )


def tool_round_trip() -> ChatRequest:
    """A conversation where the model called a tool and we give it the result."""
    return ChatRequest(
        model="m",
        messages=[
            Message(role="user", content="Weather in Paris?"),
            Message(
                role="assistant",
                tool_calls=(ToolCall(id="call_1", name="get_weather", arguments_json='{"city": "Paris"}'),),
            ),
            Message(role="tool", tool_call_id="call_1", content='{"temp_c": 21}'),
        ],
        tools=[WEATHER],
        tool_choice="auto",
    )


def json_request(schema: bool = True) -> ChatRequest:
    fmt = (
        ResponseFormat(kind="json_schema", schema_name="answer", schema={"type": "object", "properties": {}})
        if schema
        else ResponseFormat(kind="json_object")
    )
    return ChatRequest(
        model="m",
        messages=[Message(role="user", content="Reply in JSON with a greeting.")],
        response_format=fmt,
    )


@dataclass
class Assembled:
    text: str = ""
    deltas: int = 0
    finish_reason: str = ""
    usage: Usage | None = None
    upstream_model: str = ""
    tool_calls: dict[int, dict[str, str]] = field(default_factory=dict)


async def assemble(stream: AsyncIterator[ChatDelta]) -> Assembled:
    out = Assembled()
    async for delta in stream:
        out.deltas += 1
        out.text += delta.text
        out.upstream_model = delta.upstream_model or out.upstream_model
        for call in delta.tool_calls:
            entry = out.tool_calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] = call.id or entry["id"]
            entry["name"] = call.name or entry["name"]
            entry["arguments"] += call.arguments_delta
        if delta.finish_reason:
            assert not out.finish_reason, "finish_reason arrived twice"
            out.finish_reason = delta.finish_reason
            out.usage = delta.usage
    return out
