"""The OpenAI-compatible HTTP front door, driven by OpenAI's own Python SDK (chat, streaming, tools, embeddings,
models) and by raw HTTP for what an SDK would not send (malformed JSON, wrong types), against simulated and fake
OpenAI providers; the same audit, ledger, metrics and traces as gRPC, labelled api=http."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from multidict import CIMultiDict
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config.loader import parse_config
from gateway.records.audit import AuditFilter
from gateway.server.app import Gateway, build_gateway
from tests.fakes import FakeOpenAI
from tests.fakes.server import fake_vector
from tests.server.fixtures import TEST_KEY, StartGateway

SIM = """
providers:
  - {name: sim, type: simulated, simulation: {max_answer_tokens: 24}}
models:
  - {name: fast, provider: sim, tokenizer: o200k_base, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0,
     capabilities: [streaming, tools, images, json_mode]}
  - {name: emb, provider: sim, kind: embedding, dimensions: 8, tokenizer: cl100k_base, cache: {exact: true}}
guardrails:
  input:
    pii: {default: allow, CREDIT_CARD: block}
"""


def fake_config(fake: FakeOpenAI, extra: str = "") -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}, timeout_s: 5}}
  - {{name: sim, type: simulated}}
models:
  - {{name: gpt, provider: openai, upstream_model: gpt-4o-mini, capabilities: [streaming, tools, images, json_mode]}}
  - {{name: sim, provider: sim}}
  - {{name: small, provider: openai, upstream_model: text-embedding-3-small, kind: embedding, dimensions: 8}}
{extra}"""


def url(gateway: Gateway) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}"


@pytest.fixture
async def sim(start_gateway: StartGateway) -> Gateway:
    gateway, _ = await start_gateway(SIM, http=True)
    return gateway


@pytest.fixture
async def client(sim: Gateway) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=url(sim) + "/v1", api_key=TEST_KEY, max_retries=0) as sdk:
        yield sdk


async def raw(
    gateway: Gateway, path: str, body: bytes | dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], Any]:
    sent = {"authorization": f"Bearer {TEST_KEY}", **(headers or {})}
    data = body if isinstance(body, bytes) else None
    async with (
        aiohttp.ClientSession() as session,
        session.post(url(gateway) + path, data=data, json=None if data is not None else body, headers=sent) as response,
    ):
        return response.status, response.headers.copy(), await response.json(content_type=None)


async def test_chat_answers_as_openai_does_with_the_gateways_report(sim: Gateway, client: openai.AsyncOpenAI) -> None:
    raw_response = await client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "Hello there"}], user="u-1", metadata={"app": "search"}
    )
    completion = raw_response.parse()
    assert raw_response.headers["x-request-id"] == completion.id
    assert raw_response.headers["x-gateway-provider"] == "sim"
    assert raw_response.headers["x-gateway-route-strategy"] == "model"
    assert completion.object == "chat.completion"
    assert completion.model == "fast"
    assert completion.choices[0].message.content.startswith("[simulated fast]")
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    report = (completion.model_extra or {})["gateway"]
    assert report["request_id"] == completion.id
    assert report["simulated"]
    assert report["route"]["attempts"][0]["outcome"] == "ok"
    assert report["cost_usd"] == pytest.approx((usage.prompt_tokens + 2 * usage.completion_tokens) / 1e6)
    await sim.audit.flush()
    [record] = await sim.ledger.query_audit(AuditFilter(request_id=completion.id))
    assert (record.api, record.kind, record.served_model) == ("http", "chat", "fast")


async def test_streaming_matches_unary_and_ends_with_usage(client: openai.AsyncOpenAI) -> None:
    messages: Any = [{"role": "user", "content": "stream please"}]
    whole = await client.chat.completions.create(model="fast", messages=messages)
    stream = await client.chat.completions.create(
        model="fast", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    [finish] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish.choices[0].finish_reason == "stop"
    assert (finish.model_extra or {})["gateway"]["route"]["attempts"][0]["outcome"] == "ok"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]
    assert len({c.id for c in chunks}) == 1


async def test_tools_and_tool_calls_unary_and_streamed(client: openai.AsyncOpenAI) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Looks a word up",
                "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
            },
        }
    ]
    messages: Any = [{"role": "user", "content": "define gateway"}]
    completion = await client.chat.completions.create(
        model="fast", messages=messages, tools=tools, tool_choice="required"
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "lookup"  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"
    stream = await client.chat.completions.create(
        model="fast", messages=messages, tools=tools, tool_choice="required", stream=True
    )
    parts = [c.choices[0].delta.tool_calls for c in [chunk async for chunk in stream] if c.choices]
    named = [p[0].function.name for p in parts if p and p[0].function]  # type: ignore[union-attr]
    assert "lookup" in named
    # The answer to the call goes back as a tool message.
    follow = await client.chat.completions.create(
        model="fast",
        messages=[
            *messages,
            {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "a front door"},
        ],
    )
    assert follow.choices[0].message.content


async def test_openai_parameters_reach_an_openai_provider_as_sent(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gateway, _ = await start_gateway(fake_config(fake_openai), http=True)
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake").decode()
    async with openai.AsyncOpenAI(base_url=url(gateway) + "/v1", api_key=TEST_KEY, max_retries=0) as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt",
            messages=[
                {"role": "developer", "content": "Answer in JSON."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": image}},
                    ],
                },
            ],
            response_format={"type": "json_object"},
            presence_penalty=0.5,
            logit_bias={"50256": -100},
            logprobs=True,
            top_logprobs=2,
            user="end-user-7",
        )
        sent = fake_openai.requests[-1].body
        assert sent["presence_penalty"] == 0.5
        assert sent["logit_bias"] == {"50256": -100}
        assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
        assert sent["user"] == "end-user-7"
        assert sent["response_format"] == {"type": "json_object"}
        assert sent["messages"][0]["role"] == "system"
        assert sent["messages"][1]["content"][1]["image_url"]["url"] == image
        assert completion.choices[0].logprobs is not None  # came back from the provider
        # A target that does not speak OpenAI's format refuses the parameter by name, never drops it.
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.chat.completions.create(
                model="sim", messages=[{"role": "user", "content": "hi"}], presence_penalty=0.5
            )
        assert refused.value.code == "unsupported_parameter"
        assert refused.value.param == "presence_penalty"
        with pytest.raises(openai.BadRequestError) as several:
            await sdk.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}], n=2)
        assert several.value.param == "n"


async def test_embeddings_floats_base64_and_the_cache_per_input(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gateway, _ = await start_gateway(fake_config(fake_openai), http=True)
    async with openai.AsyncOpenAI(base_url=url(gateway) + "/v1", api_key=TEST_KEY, max_retries=0) as sdk:
        floats = await sdk.embeddings.create(model="small", input=["one", "two"], encoding_format="float")
        assert [d.embedding for d in floats.data] == [
            list(struct.unpack("<8f", struct.pack("<8f", *fake_vector(t)))) for t in ("one", "two")
        ]
        assert floats.usage.prompt_tokens == 2
        # The SDK's default asks for base64 and decodes it itself.
        packed = await sdk.embeddings.create(model="small", input="one")
        assert packed.data[0].embedding == floats.data[0].embedding
        cached = await sdk.embeddings.with_raw_response.create(
            model="small",
            input=["two", "three"],
            encoding_format="float",
            extra_headers={"x-gateway-cache": "read_write", "x-gateway-cache-namespace": "tests"},
        )
        again = await sdk.embeddings.with_raw_response.create(
            model="small",
            input=["three", "two"],
            encoding_format="float",
            extra_headers={"x-gateway-cache": "read_write", "x-gateway-cache-namespace": "tests"},
        )
    assert cached.headers["x-gateway-cache-status"] == "miss"
    assert again.headers["x-gateway-cache-status"].startswith("hit")
    assert (again.parse().model_extra or {})["gateway"]["cached"] == [True, True]
    assert len([r for r in fake_openai.requests if r.path.endswith("/embeddings")]) == 3


async def test_models_lists_chat_and_embedding_models(client: openai.AsyncOpenAI) -> None:
    models = {m.id: m for m in (await client.models.list()).data}
    assert set(models) == {"fast", "emb"}
    assert (models["emb"].model_extra or {})["gateway"]["kind"] == "embedding"
    one = await client.models.retrieve("emb")
    assert (one.id, (one.model_extra or {})["gateway"]["dimensions"]) == ("emb", 8)
    with pytest.raises(openai.NotFoundError) as unknown:
        await client.models.retrieve("nope")
    assert unknown.value.code == "unknown_model"


async def test_errors_follow_openais_schema_and_statuses(sim: Gateway) -> None:
    status, headers, body = await raw(sim, "/v1/chat/completions", b'{"model": "fast", "messages": [')
    assert status == 400
    assert body["error"]["code"] == "malformed_json"
    assert headers["x-request-id"]
    status, _, body = await raw(sim, "/v1/chat/completions", {"model": "fast"})
    assert (status, body["error"]["param"], body["error"]["type"]) == (400, "messages", "invalid_request_error")
    status, _, body = await raw(sim, "/v1/chat/completions", {"model": "fast", "messages": [], "temperature": 3})
    assert status == 400
    status, _, body = await raw(
        sim, "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": "x"}], "temperature": 3}
    )
    assert (status, body["error"]["param"]) == (400, "temperature")
    status, _, body = await raw(
        sim, "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": 5}]}
    )
    assert (status, body["error"]["param"]) == (400, "messages[0].content")
    status, _, body = await raw(
        sim, "/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    )
    assert (status, body["error"]["code"], body["error"]["param"]) == (404, "unknown_model", "model")
    status, _, body = await raw(
        sim,
        "/v1/chat/completions",
        {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
        {"authorization": "Bearer wrong"},
    )
    assert (status, body["error"]["type"]) == (401, "authentication_error")
    status, _, body = await raw(
        sim,
        "/v1/chat/completions",
        {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
        {"x-data-classification": "top-secret"},
    )
    assert (status, body["error"]["code"]) == (400, "bad_classification")
    status, _, body = await raw(
        sim,
        "/v1/chat/completions",
        {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
        {"x-gateway-cache": "sometimes"},
    )
    assert (status, body["error"]["param"]) == (400, "x-gateway-cache")
    status, _, body = await raw(sim, "/v1/embeddings", {"model": "emb", "input": "card 4111 1111 1111 1111"})
    assert (status, body["error"]["code"]) == (400, "pii_blocked")
    status, _, body = await raw(sim, "/v1/embeddings", {"model": "fast", "input": "x"})
    assert (status, body["error"]["code"]) == (400, "wrong_model_kind")
    status, _, body = await raw(sim, "/v1/embeddings", {"model": "emb", "input": [[1, 2, 3]]})
    assert (status, body["error"]["param"]) == (400, "input")
    # The server keeps serving.
    status, _, body = await raw(
        sim, "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": "x"}]}
    )
    assert status == 200


async def test_every_answer_has_a_request_id_and_openais_error_body(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMITED_TEST_KEY", "gw-limited")
    gateway, _ = await start_gateway(http=True)  # the shared config: key `limited` may call `fast` only
    limited = {"authorization": "Bearer gw-limited"}
    status, headers, body = await raw(
        gateway, "/v1/chat/completions", {"model": "slow", "messages": [{"role": "user", "content": "x"}]}, limited
    )
    assert (status, body["error"]["type"], body["error"]["code"]) == (403, "permission_error", "model_not_allowed")
    assert headers["x-request-id"]
    status, headers, body = await raw(gateway, "/v1/completions", {"model": "fast", "prompt": "x"})
    assert (status, body["error"]["type"]) == (404, "invalid_request_error")
    assert "/v1/chat/completions" in body["error"]["message"]
    assert headers["x-request-id"]
    slow = {"model": "slow", "messages": [{"role": "user", "content": "x"}]}  # its first token after 1.5 s
    status, headers, body = await raw(gateway, "/v1/chat/completions", slow, {"x-gateway-timeout-ms": "200"})
    assert (status, body["error"]["type"], body["error"]["code"]) == (504, "server_error", "deadline_exceeded")
    status, _, body = await raw(gateway, "/v1/chat/completions", slow, {"x-gateway-timeout-ms": "soon"})
    assert (status, body["error"]["param"]) == (400, "x-gateway-timeout-ms")
    async with aiohttp.ClientSession() as session:
        async with session.get(url(gateway) + "/v1/models", headers={"authorization": "Bearer nope"}) as refused:
            assert refused.status == 401
            assert (await refused.json())["error"]["type"] == "authentication_error"
            assert refused.headers["x-request-id"]
        async with session.get(url(gateway) + "/v1/models", headers=limited) as listed:
            assert [m["id"] for m in (await listed.json())["data"]] == ["fast"]
            assert listed.headers["x-request-id"]
        async with session.get(url(gateway) + "/v1/chat/completions", headers=limited) as wrong_method:
            assert wrong_method.status == 405
            assert (await wrong_method.json())["error"]["type"] == "invalid_request_error"


async def test_upstream_failures_map_to_429_with_retry_after_and_503(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    other = "  - {name: gpt-b, provider: openai, upstream_model: gpt-4o}\n"
    gateway, _ = await start_gateway(fake_config(fake_openai, other), http=True)
    ask = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    # A 429 rests its target until Retry-After: another model than the rest of the test uses.
    fake_openai.fail(429, retry_after=7)
    status, headers, body = await raw(gateway, "/v1/chat/completions", {**ask, "model": "gpt-b"})
    assert (status, headers["retry-after"], body["error"]["type"]) == (429, "7", "rate_limit_error")
    assert body["error"]["code"] == "upstream_rate_limited"
    fake_openai.fail(400, message="Invalid 'messages'.")
    status, _, body = await raw(gateway, "/v1/chat/completions", ask)
    assert (status, body["error"]["code"]) == (400, "upstream_rejected_request")
    fake_openai.fail(503, times=10)
    status, headers, body = await raw(gateway, "/v1/chat/completions", ask)
    assert (status, body["error"]["type"]) == (503, "server_error")
    assert headers["x-request-id"]


async def test_a_stream_that_fails_after_its_first_chunk_ends_with_an_error_event(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gateway, _ = await start_gateway(fake_config(fake_openai), http=True)
    fake_openai.reply("one two three four five six")
    fake_openai.drop(after_chunks=3)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url(gateway) + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {TEST_KEY}"}
        ) as response,
    ):
        assert response.status == 200
        events = [line for line in (await response.text()).split("\n\n") if line]
    assert '"content":"one' in events[1]
    last = orjson.loads(events[-1].removeprefix("data: "))
    assert last["error"]["code"] == "upstream_disconnected"
    assert last["error"]["type"] == "server_error"
    await gateway.audit.flush()
    [record] = await gateway.ledger.query_audit(AuditFilter())
    assert (record.status, record.api) == ("UNAVAILABLE", "http")


async def test_an_input_over_the_limit_is_413(start_gateway: StartGateway) -> None:
    gateway, _ = await start_gateway(SIM.replace("providers:", "server: {max_input_chars: 10}\nproviders:"), http=True)
    status, _, body = await raw(
        gateway, "/v1/chat/completions", {"model": "fast", "messages": [{"role": "user", "content": "x" * 20}]}
    )
    assert (status, body["error"]["code"]) == (413, "input_too_large")
    small = SIM.replace("providers:", "server: {max_message_bytes: 1024}\nproviders:")
    limited, _ = await start_gateway(small, http=True)
    big = {"model": "fast", "messages": [{"role": "user", "content": "x" * 2000}]}
    status, headers, body = await raw(limited, "/v1/chat/completions", big)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    assert headers["x-request-id"]


async def test_a_client_that_goes_away_cancels_the_upstream_stream(
    start_gateway: StartGateway, fake_openai: FakeOpenAI
) -> None:
    gateway, _ = await start_gateway(fake_config(fake_openai), http=True)
    fake_openai.reply("one two three four five six seven eight")
    gate = fake_openai.pause_after(3)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            url(gateway) + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {TEST_KEY}"}
        )
        assert response.status == 200
        await response.content.readline()
        response.close()  # the client goes away mid-stream
    await fake_openai.wait_disconnect(within=5)
    gate.set()
    await asyncio.sleep(0.05)
    await gateway.audit.flush()
    [record] = await gateway.ledger.query_audit(AuditFilter())
    assert (record.status, record.api) == ("CANCELLED", "http")


async def test_the_callers_trace_continues_and_metrics_name_the_front_door(start_gateway: StartGateway) -> None:
    exporter = InMemorySpanExporter()
    gateway, _ = await start_gateway(SIM, span_exporter=exporter, http=True)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    status, _, _ = await raw(
        gateway,
        "/v1/chat/completions",
        {"model": "fast", "messages": [{"role": "user", "content": "x"}]},
        {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert status == 200
    assert gateway.tracing is not None
    gateway.tracing.force_flush()
    [server] = [s for s in exporter.get_finished_spans() if s.name == "POST /v1/chat/completions"]
    assert server.parent is not None
    assert f"{server.context.trace_id:032x}" == trace_id
    attributes = dict(server.attributes or {})
    assert (attributes["llm_gateway.api"], attributes["http.route"]) == ("http", "/v1/chat/completions")
    assert "rpc.system" not in attributes
    async with aiohttp.ClientSession() as session:
        assert gateway.metrics_server is not None
        async with session.get(gateway.metrics_server.url) as response:
            text = await response.text()
    assert 'api="http"' in text


async def test_stopping_lets_http_calls_in_flight_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", TEST_KEY)
    slow = """
providers: [{name: slow, type: simulated, simulation: {time_to_first_token_ms: 800, max_answer_tokens: 4}}]
models: [{name: slow, provider: slow}]
"""
    gateway = await build_gateway(
        parse_config(slow), address="127.0.0.1:0", state_dir=tmp_path, metrics_address="", http_address="127.0.0.1:0"
    )
    await gateway.server.start()
    body = {"model": "slow", "messages": [{"role": "user", "content": "x"}]}
    in_flight = asyncio.create_task(raw(gateway, "/v1/chat/completions", body))
    await asyncio.sleep(0.3)  # the call is waiting for its first token
    await gateway.stop(5)
    status, headers, answer = await in_flight
    assert status == 200
    assert answer["id"] == headers["x-request-id"]
    with pytest.raises(aiohttp.ClientConnectionError):
        await raw(gateway, "/v1/chat/completions", body)
