"""gateway._core.encode_span_chunk and encode_export: OTLP trace export bytes, read back with the official
opentelemetry-proto messages.

The contract is the wire format: whatever `encode_export` writes of `encode_span_chunk`'s chunks,
`ExportTraceServiceRequest.FromString` must read as the spans that went in, and as opentelemetry-python's own encoder
writes the same spans.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status
from opentelemetry.sdk.resources import Resource as SdkResource
from opentelemetry.sdk.trace import Event as SdkEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as SdkScope
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, TraceState
from opentelemetry.trace import Status as SdkStatus

from gateway._core import encode_export, encode_span_chunk

if TYPE_CHECKING:
    from gateway._core import OtlpAttributes, OtlpAttributeValue, OtlpSpan

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
PARENT_ID = 0x00F067AA0BA902B7
START = 1_700_000_000_123_456_789
END = START + 250_000_000
# OTLP span flags as opentelemetry-python writes them: the parent's remoteness is known (bit 8) and local.
HAS_IS_REMOTE = 0x100


def encode_spans(resource: OtlpAttributes, scope_name: str, scope_version: str, spans: Iterable[OtlpSpan]) -> bytes:
    """One request of `spans` in one chunk."""
    return encode_export(resource, scope_name, scope_version, [encode_span_chunk(spans)])


def decode(data: bytes) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest.FromString(data)


def only_span(request: ExportTraceServiceRequest) -> Span:
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    [span] = scope_spans.spans
    return span


def a_span(**fields: Any) -> OtlpSpan:
    """A valid span tuple; keyword arguments replace fields by name."""
    span: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": SPAN_ID,
        "parent_span_id": PARENT_ID,
        "name": "Chat",
        "kind": 2,
        "start_ns": START,
        "end_ns": END,
        "attributes": [],
        "events": [],
        "status_code": 0,
        "status_message": "",
        "trace_state": "",
        "flags": 1,
    }
    unknown = fields.keys() - span.keys()
    assert not unknown, unknown
    span.update(fields)
    return tuple(span.values())


def test_every_field_round_trips() -> None:
    attributes: list[tuple[str, OtlpAttributeValue]] = [
        ("rpc.method", "Chat"),
        ("gen_ai.usage.input_tokens", 1234),
        ("delta", -42),
        ("min_int", -(2**63)),
        ("max_int", 2**63 - 1),
        ("cost_usd", 0.00125),
        ("negative", -2.5),
        ("cached", True),
        ("streamed", False),
        ("models", ["gpt-4o", "claude"]),
        ("token_counts", (1, -2, 3)),
        ("scores", [0.5, -1.25]),
        ("flags", [True, False]),
        ("mixed", ("a", 1, 2.0, True)),
        ("empty", []),
    ]
    events = [("first_token", START + 5, [("index", 0), ("text", "hi")]), ("done", END, [])]
    span = a_span(
        kind=3,
        attributes=attributes,
        events=events,
        status_code=2,
        status_message="upstream 503",
        trace_state="vendor=abc,other=1",
        flags=HAS_IS_REMOTE | 1,
    )
    resource: list[tuple[str, OtlpAttributeValue]] = [
        ("service.name", "llm-gateway"),
        ("service.instance.id", "gw-1"),
        ("pid", 4242),
    ]

    request = decode(encode_spans(resource, "gateway.observe", "0.1.0", [span]))

    [resource_spans] = request.resource_spans
    assert resource_spans.resource == Resource(
        attributes=[
            KeyValue(key="service.name", value=AnyValue(string_value="llm-gateway")),
            KeyValue(key="service.instance.id", value=AnyValue(string_value="gw-1")),
            KeyValue(key="pid", value=AnyValue(int_value=4242)),
        ]
    )
    [scope_spans] = resource_spans.scope_spans
    assert scope_spans.scope == InstrumentationScope(name="gateway.observe", version="0.1.0")
    [out] = scope_spans.spans
    assert out.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert out.span_id == bytes.fromhex("b7ad6b7169203331")
    assert out.parent_span_id == bytes.fromhex("00f067aa0ba902b7")
    assert out.trace_state == "vendor=abc,other=1"
    assert out.flags == HAS_IS_REMOTE | 1
    assert out.name == "Chat"
    assert out.kind == Span.SPAN_KIND_CLIENT
    assert out.start_time_unix_nano == START
    assert out.end_time_unix_nano == END
    assert out.status == Status(code=Status.STATUS_CODE_ERROR, message="upstream 503")

    values = {kv.key: kv.value for kv in out.attributes}
    assert [kv.key for kv in out.attributes] == [key for key, _ in attributes], "order kept"
    assert values["rpc.method"] == AnyValue(string_value="Chat")
    assert values["gen_ai.usage.input_tokens"] == AnyValue(int_value=1234)
    assert values["delta"] == AnyValue(int_value=-42)
    assert values["min_int"] == AnyValue(int_value=-(2**63))
    assert values["max_int"] == AnyValue(int_value=2**63 - 1)
    assert values["cost_usd"] == AnyValue(double_value=0.00125)
    assert values["negative"] == AnyValue(double_value=-2.5)
    assert values["cached"] == AnyValue(bool_value=True)
    assert values["streamed"].WhichOneof("value") == "bool_value"
    assert values["streamed"].bool_value is False
    assert values["models"] == AnyValue(
        array_value=ArrayValue(values=[AnyValue(string_value="gpt-4o"), AnyValue(string_value="claude")])
    )
    assert [v.int_value for v in values["token_counts"].array_value.values] == [1, -2, 3]
    assert [v.double_value for v in values["scores"].array_value.values] == [0.5, -1.25]
    assert [v.bool_value for v in values["flags"].array_value.values] == [True, False]
    assert [v.WhichOneof("value") for v in values["mixed"].array_value.values] == [
        "string_value",
        "int_value",
        "double_value",
        "bool_value",
    ]
    assert values["empty"].WhichOneof("value") == "array_value"
    assert len(values["empty"].array_value.values) == 0

    assert [(e.name, e.time_unix_nano) for e in out.events] == [("first_token", START + 5), ("done", END)]
    assert list(out.events[0].attributes) == [
        KeyValue(key="index", value=AnyValue(int_value=0)),
        KeyValue(key="text", value=AnyValue(string_value="hi")),
    ]
    assert len(out.events[1].attributes) == 0


def test_bool_is_not_encoded_as_int() -> None:
    out = only_span(decode(encode_spans([], "s", "", [a_span(attributes=[("b", True), ("i", 1), ("f", 1.0)])])))
    assert [kv.value.WhichOneof("value") for kv in out.attributes] == ["bool_value", "int_value", "double_value"]


def test_root_span_has_no_parent_and_unset_status() -> None:
    out = only_span(decode(encode_spans([], "s", "", [a_span(parent_span_id=0)])))
    assert out.parent_span_id == b""
    assert out.status.code == Status.STATUS_CODE_UNSET
    assert out.status.message == ""


def test_ids_keep_leading_zero_bytes_and_full_width() -> None:
    out = only_span(decode(encode_spans([], "s", "", [a_span(trace_id=1, span_id=2**64 - 1, parent_span_id=1)])))
    assert out.trace_id == bytes(15) + b"\x01"
    assert out.span_id == b"\xff" * 8
    assert out.parent_span_id == bytes(7) + b"\x01"
    out = only_span(decode(encode_spans([], "s", "", [a_span(trace_id=2**128 - 1)])))
    assert out.trace_id == b"\xff" * 16


def test_empty_batch_is_the_empty_request() -> None:
    data = encode_spans([("service.name", "gw")], "gateway", "1.0", [])
    assert data == b""
    assert len(decode(data).resource_spans) == 0


def test_chunks_make_one_request_of_their_spans_in_order() -> None:
    spans = [a_span(span_id=i, name=f"stage-{i}") for i in range(1, 8)]
    chunks = [encode_span_chunk(spans[:3]), encode_span_chunk([]), encode_span_chunk(spans[3:])]
    data = encode_export([("service.name", "gw")], "gateway", "1.0", chunks)
    assert data == encode_spans([("service.name", "gw")], "gateway", "1.0", spans)
    [resource_spans] = decode(data).resource_spans
    [scope_spans] = resource_spans.scope_spans
    assert [s.name for s in scope_spans.spans] == [f"stage-{i}" for i in range(1, 8)]
    assert encode_export([], "s", "", [encode_span_chunk([]), b""]) == b""


def test_a_chunk_is_bytes() -> None:
    with pytest.raises(TypeError, match=r"chunks\[1\] must be bytes from encode_span_chunk, not str"):
        encode_export([], "s", "", [encode_span_chunk([a_span()]), "spans"])  # type: ignore[list-item]


def test_many_spans_keep_their_order() -> None:
    spans = [a_span(span_id=i, name=f"stage-{i}") for i in range(1, 301)]
    [resource_spans] = decode(encode_spans([], "s", "", spans)).resource_spans
    [scope_spans] = resource_spans.scope_spans
    assert [s.name for s in scope_spans.spans] == [f"stage-{i}" for i in range(1, 301)]
    assert scope_spans.spans[-1].span_id == (300).to_bytes(8, "big")


def test_non_ascii_text() -> None:
    text = "naïve café — 日本語 🤖 Ελληνικά"
    span = a_span(
        name=text,
        attributes=[(text, text), ("list", [text, "é"])],
        events=[(text, START, [("k", text)])],
        status_code=2,
        status_message=text,
    )
    out = only_span(decode(encode_spans([("ключ", "значение")], "скоуп", "β", [span])))
    assert out.name == text
    assert out.attributes[0] == KeyValue(key=text, value=AnyValue(string_value=text))
    assert [v.string_value for v in out.attributes[1].value.array_value.values] == [text, "é"]
    assert out.events[0].name == text
    assert out.events[0].attributes[0].value.string_value == text
    assert out.status.message == text


def test_special_floats() -> None:
    attributes = [("inf", math.inf), ("ninf", -math.inf), ("nan", math.nan), ("neg_zero", -0.0)]
    values = {
        kv.key: kv.value.double_value
        for kv in only_span(decode(encode_spans([], "s", "", [a_span(attributes=attributes)]))).attributes
    }
    assert values["inf"] == math.inf
    assert values["ninf"] == -math.inf
    assert math.isnan(values["nan"])
    assert math.copysign(1.0, values["neg_zero"]) == -1.0


def test_attributes_may_be_dict_items() -> None:
    attributes: dict[str, OtlpAttributeValue] = {"a": 1, "b": "x"}
    out = only_span(decode(encode_spans(attributes.items(), "s", "", [a_span(attributes=attributes.items())])))
    assert [(kv.key, kv.value.WhichOneof("value")) for kv in out.attributes] == [
        ("a", "int_value"),
        ("b", "string_value"),
    ]


def test_any_iterables() -> None:
    """Generators have no len(): they are read all the same."""
    attributes = ((f"k{i}", i) for i in range(3))
    spans = (a_span(span_id=i, attributes=attributes if i == 1 else ()) for i in range(1, 3))
    request = decode(encode_spans(iter([("r", 1)]), "s", "", spans))
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    assert [len(span.attributes) for span in scope_spans.spans] == [3, 0]
    assert [kv.key for kv in resource_spans.resource.attributes] == ["r"]


@pytest.mark.parametrize(
    "value",
    [None, b"bytes", bytearray(b"x"), {"k": 1}, {1, 2}, object(), 2**63, -(2**63) - 1, [None], [[1]], [b"x"], [2**64]],
    ids=repr,
)
def test_bad_attribute_value_is_a_value_error_naming_the_key(value: object) -> None:
    bad: Any = [("ok", 1), ("gen_ai.bad_value", value)]
    with pytest.raises(ValueError, match=r"spans\[0\].*gen_ai\.bad_value"):
        encode_spans([], "s", "", [a_span(attributes=bad)])
    with pytest.raises(ValueError, match=r"resource_attributes.*gen_ai\.bad_value"):
        encode_spans(bad, "s", "", [a_span()])
    with pytest.raises(ValueError, match=r"spans\[1\].*gen_ai\.bad_value"):
        encode_spans([], "s", "", [a_span(), a_span(events=[("e", START, bad)])])


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"trace_id": 0}, ValueError, "must not be 0"),
        ({"span_id": 0}, ValueError, "must not be 0"),
        ({"trace_id": 2**128}, ValueError, "trace_id"),
        ({"trace_id": -1}, ValueError, "trace_id"),
        ({"span_id": 2**64}, ValueError, "span_id"),
        ({"parent_span_id": -1}, ValueError, "parent_span_id"),
        ({"kind": 6}, ValueError, "SpanKind"),
        ({"kind": -1}, ValueError, "SpanKind"),
        ({"status_code": 3}, ValueError, "status_code"),
        ({"start_ns": -1}, ValueError, "start_ns"),
        ({"flags": 2**32}, ValueError, "flags"),
        ({"trace_id": "0af7"}, TypeError, "trace_id must be an int, not str"),
        ({"start_ns": 1.5}, TypeError, "start_ns must be an int, not float"),
        ({"name": b"Chat"}, TypeError, "name must be a str, not bytes"),
        ({"attributes": "k=v"}, TypeError, r"\(key, value\) tuples"),
        ({"attributes": {"k": "v"}}, TypeError, r"dict\.items\(\)"),
        ({"attributes": [["k", "v"]]}, TypeError, r"\(key, value\) tuples"),
        ({"attributes": [(1, "v")]}, TypeError, "attribute key must be a str"),
        ({"events": [("e", START)]}, TypeError, r"\(name, time_ns, attributes\)"),
    ],
)
def test_bad_span_field(fields: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        encode_spans([], "s", "", [a_span(), a_span(**fields)])


@pytest.mark.parametrize("span", [(), (1, 2, 3), [*a_span()], "span"], ids=repr)
def test_a_span_is_a_13_tuple(span: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="span"):
        encode_spans([], "s", "", [span])


def test_same_message_as_opentelemetry_python() -> None:
    """The SDK's encoder on equivalent ReadableSpans writes the same request."""
    resource = [("service.name", "llm-gateway"), ("service.version", "0.1.0")]
    spans = [
        a_span(
            span_id=n + 1,
            parent_span_id=n,
            kind=1 + n % 5,
            attributes=[("i", n), ("f", n / 3), ("s", f"v{n}"), ("b", n % 2 == 0), ("a", [n, -n])],
            events=[("tick", START + n, [("n", n)])],
            status_code=n % 3,
            status_message="boom" if n % 3 == 2 else "",
            trace_state="k=v" if n % 2 else "",
            flags=HAS_IS_REMOTE,
        )
        for n in range(6)
    ]
    ours = decode(encode_spans(resource, "gateway.observe", "0.1.0", spans))
    theirs = sdk_encode_spans(readable_spans(resource, "gateway.observe", "0.1.0", spans))
    assert ours == theirs


# ---------------------------------------------------------------------------------------------------------------------
# References: the same spans as SDK objects (for opentelemetry-python's encoder), and as protobuf messages built field
# by field from the tuples (for the property test).


def readable_spans(
    resource_attributes: OtlpAttributes, scope_name: str, scope_version: str, spans: Iterable[OtlpSpan]
) -> list[ReadableSpan]:
    """ReadableSpans equivalent to span tuples (flags are the SDK's own: HAS_IS_REMOTE, parent local)."""
    resource = SdkResource(dict(resource_attributes))
    scope = SdkScope(scope_name, scope_version)
    out = []
    for trace_id, span_id, parent_id, name, kind, start, end, attributes, events, code, message, state, flags in spans:
        trace_state = TraceState([tuple(item.split("=", 1)) for item in state.split(",")] if state else None)  # type: ignore[misc]
        context = SpanContext(
            trace_id, span_id, is_remote=False, trace_flags=TraceFlags(flags & 0xFF), trace_state=trace_state
        )
        parent = SpanContext(trace_id, parent_id, is_remote=False) if parent_id else None
        out.append(
            ReadableSpan(
                name=name,
                context=context,
                parent=parent,
                resource=resource,
                attributes=dict(attributes),
                events=[SdkEvent(n, dict(a), timestamp=t) for n, t, a in events],
                kind=SpanKind(kind - 1),
                status=SdkStatus(StatusCode(code), message or None),
                start_time=start,
                end_time=end,
                instrumentation_scope=scope,
            )
        )
    return out


def any_value(value: OtlpAttributeValue) -> AnyValue:
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))


def key_values(attributes: OtlpAttributes) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes]


def span_message(span: OtlpSpan) -> Span:
    trace_id, span_id, parent_id, name, kind, start, end, attributes, events, code, message, state, flags = span
    return Span(
        trace_id=trace_id.to_bytes(16, "big"),
        span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent_id.to_bytes(8, "big") if parent_id else b"",
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=key_values(attributes),
        events=[Span.Event(name=n, time_unix_nano=t, attributes=key_values(a)) for n, t, a in events],
        status=Status(code=code, message=message),  # type: ignore[arg-type]
        trace_state=state,
        flags=flags,
    )


def expected_request(
    resource: OtlpAttributes, scope_name: str, scope_version: str, spans: Sequence[OtlpSpan]
) -> ExportTraceServiceRequest:
    if not spans:
        return ExportTraceServiceRequest()
    scope = InstrumentationScope(name=scope_name, version=scope_version)
    scope_spans = ScopeSpans(scope=scope, spans=[span_message(span) for span in spans])
    resource_spans = ResourceSpans(resource=Resource(attributes=key_values(resource)), scope_spans=[scope_spans])
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


u64 = st.integers(0, 2**64 - 1)
scalars = st.one_of(
    st.text(max_size=12),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),  # NaN != NaN would fail the comparison; test_special_floats covers it
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.lists(scalars, max_size=4).map(tuple))
attribute_lists = st.lists(st.tuples(st.text(max_size=12), values), max_size=6)
span_tuples = st.tuples(
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    u64,
    st.text(max_size=20),
    st.integers(0, 5),
    u64,
    u64,
    attribute_lists,
    st.lists(st.tuples(st.text(max_size=8), u64, attribute_lists), max_size=3),
    st.integers(0, 2),
    st.text(max_size=12),
    st.sampled_from(["", "vendor=x", "a=1,b=2"]),
    st.integers(0, 2**32 - 1),
)


@given(
    resource=attribute_lists,
    scope=st.tuples(st.text(max_size=8), st.text(max_size=8)),
    spans=st.lists(span_tuples, max_size=5),
)
def test_random_spans_round_trip(
    resource: list[tuple[str, OtlpAttributeValue]], scope: tuple[str, str], spans: list[OtlpSpan]
) -> None:
    assert decode(encode_spans(resource, *scope, spans)) == expected_request(resource, *scope, spans)
