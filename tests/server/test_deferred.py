"""Deferred calls through the Gateway service: held per target and released in groups, answers matched to their
callers whatever order the provider answers in, prefix groups sent one first with prompt caching engaged, billed
once at the prices that applied, fetchable with GetDeferred after the caller went away, and resumed after a
restart."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import insights_pb2 as ipb
from llmgateway.v1 import insights_pb2_grpc

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, reason_of
from tests.fakes import FakeAnthropic, FakeOpenAI
from tests.fakes.server import Answer, Recorded
from tests.server.fixtures import AUTH, StartGateway

INPUT, OUTPUT, CACHED = 2.0, 8.0, 0.5
PROMPT, COMPLETION = 100, 20


class EchoOpenAI(FakeOpenAI):
    """Answers each request with its last message's text, after a random delay (so answers come back out of order),
    and reports the prompt tokens a request shares with an earlier one as cached, as OpenAI's automatic prefix
    caching does once a prefix has been seen."""

    def __init__(self, *, max_delay_s: float = 0.02, shared_tokens: int = 0) -> None:
        super().__init__()
        self._rng = random.Random(7)
        self._max_delay_s = max_delay_s
        self._shared_tokens = shared_tokens
        self._seen: set[str] = set()
        self.arrivals: list[tuple[float, str]] = []
        self.answered: dict[str, float] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()  # aiohttp keeps the body: the base class reads it again
        self.arrivals.append((time.monotonic(), body["messages"][-1]["content"]))
        await asyncio.sleep(self._rng.random() * self._max_delay_s)
        return await super().handle(request)

    def answer_body(self, answer: Answer, request: web.Request, recorded: Recorded) -> dict[str, Any]:
        messages = recorded.body["messages"]
        text = messages[-1]["content"]
        prefix = repr(messages[:-1])
        cached = self._shared_tokens if len(messages) > 1 and prefix in self._seen else 0
        self._seen.add(prefix)
        self.answered[text] = time.monotonic()
        echoed = dataclasses.replace(
            answer, text=f"echo: {text}", prompt_tokens=PROMPT, completion_tokens=COMPLETION, cached_tokens=cached
        )
        return super().answer_body(echoed, request, recorded)


def config(fake: FakeOpenAI | FakeAnthropic, *, max_batch: int = 25, max_wait_s: float = 60.0, extra: str = "") -> str:
    kind = "anthropic" if isinstance(fake, FakeAnthropic) else "openai"
    return f"""
providers:
  - {{name: up, type: {kind}, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: m
    provider: up
    upstream_model: {fake.default_model}
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
    cached_input_cost_per_mtok: {CACHED}
{extra}
deferral: {{max_batch: {max_batch}, max_wait_s: {max_wait_s}, min_prefix_tokens: 50}}
"""


@pytest.fixture
async def echo(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EchoOpenAI]:
    fake = await EchoOpenAI().start()
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value or "")
    yield fake
    await fake.close()


def deferred(text: str, seconds: float = 30.0, *, system: str = "") -> pb.ChatRequest:
    messages = [pb.Message(role="system", content=system)] if system else []
    messages.append(pb.Message(role="user", content=text))
    return pb.ChatRequest(model="m", messages=messages, defer_up_to_s=seconds)


def per_call_usd(cached: int = 0) -> float:
    return ((PROMPT - cached) * INPUT + cached * CACHED + COMPLETION * OUTPUT) / 1e6


async def accepted(
    admin: Admin, ids: list[str], metadata: tuple[tuple[str, str], ...] = AUTH
) -> list[pb.GetDeferredResponse]:
    """GetDeferred of each id, once the gateway has accepted them all (a call is accepted when its row is in the
    database: NOT_FOUND until then)."""
    for _ in range(200):
        try:
            return [
                await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=i), metadata=metadata) for i in ids
            ]
        except grpc.aio.AioRpcError as err:
            if err.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            await asyncio.sleep(0.01)
    raise AssertionError(f"not accepted: {ids}")


async def records(admin: Admin, gateway: Gateway) -> list[apb.AuditRecord]:
    await gateway.audit.flush()
    found = await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=1000), metadata=AUTH)
    return list(found.records)


async def test_a_thousand_calls_from_fifty_callers_go_in_full_groups_and_each_caller_gets_its_own_answer(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    """50 callers, each with one call held at a time: every group fills to max_batch (25) and is released by its
    count, never by the wait, so 1,000 calls make exactly 40 groups of 25."""
    gateway, channel = await start_gateway(config(echo))
    admin = Admin.on(channel)

    async def caller(index: int) -> list[tuple[str, pb.ChatResponse]]:
        got = []
        for n in range(20):
            text = f"caller {index} call {n}"
            got.append((text, await admin.gateway.Chat(deferred(text), metadata=AUTH)))
        return got

    answers = [pair for batch in await asyncio.gather(*(caller(i) for i in range(50))) for pair in batch]
    assert len(answers) == 1000
    assert all(response.message.content == f"echo: {text}" for text, response in answers)
    order = [text for _, text in echo.arrivals]
    assert order != sorted(order, key=lambda t: echo.answered[t])  # the provider answered out of arrival order

    found = await records(admin, gateway)
    groups = collections.Counter(record.deferred.group for record in found)
    assert len(groups) == 40
    assert set(groups.values()) == {25}
    billed = sum(response.usage.cost_usd for _, response in answers)
    assert billed == pytest.approx(1000 * per_call_usd(), rel=1e-9)
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="model"), metadata=AUTH)
    total = usage.total
    assert (total.requests, total.prompt_tokens, total.completion_tokens) == (1000, 1000 * PROMPT, 1000 * COMPLETION)
    assert total.cost_usd == pytest.approx(billed, rel=1e-9)
    assert total.deferred_calls == 1000
    assert total.deferred_cost_usd == pytest.approx(billed, rel=1e-9)
    assert total.deferred_interactive_usd == pytest.approx(billed, rel=1e-9)  # no prefix shared: nothing saved


async def test_calls_sharing_a_long_prefix_go_one_first_and_the_rest_read_the_providers_cache(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await EchoOpenAI(shared_tokens=60).start()
    for name, value in fake.environment().items():
        monkeypatch.setenv(name, value or "")
    try:
        gateway, channel = await start_gateway(config(fake, max_batch=6))
        admin = Admin.on(channel)
        system = "You grade essays. " * 40  # well past min_prefix_tokens (50)
        shared = [deferred(f"essay {n}", system=system) for n in range(4)]
        requests = [*shared, deferred("other 1"), deferred("other 2")]
        responses = await asyncio.gather(*(admin.gateway.Chat(r, metadata=AUTH) for r in requests))
    finally:
        await fake.close()
    arrived = {text: at for at, text in fake.arrivals}
    leader = min(("essay 0", "essay 1", "essay 2", "essay 3"), key=arrived.__getitem__)
    followers = {f"essay {n}" for n in range(4)} - {leader}
    assert all(arrived[f] >= fake.answered[leader] for f in followers)  # after the leader's answer
    assert all(arrived[o] < fake.answered[leader] for o in ("other 1", "other 2"))  # not held behind it
    by_text = {r.message.content.removeprefix("echo: "): r for r in responses}
    assert by_text[leader].usage.cached_prompt_tokens == 0
    assert all(by_text[f].usage.cached_prompt_tokens == 60 for f in followers)
    assert by_text[followers.pop()].usage.cost_usd == pytest.approx(per_call_usd(cached=60), rel=1e-9)
    found = {r.request_id: r for r in await records(admin, gateway)}
    prefix_cached = sorted(found[r.id].deferred.prefix_cached for r in responses)
    assert prefix_cached == [False, False, False, True, True, True]
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="model"), metadata=AUTH)
    saved = usage.total.deferred_interactive_usd - usage.total.deferred_cost_usd
    assert saved == pytest.approx(3 * 60 * (INPUT - CACHED) / 1e6, rel=1e-9)
    insights = insights_pb2_grpc.InsightsStub(channel)
    analytics = await insights.GetAnalytics(ipb.GetAnalyticsRequest(), metadata=AUTH)
    [row] = analytics.rows
    assert (row.model, row.deferred_calls) == ("m", 6)
    assert row.deferred_cost_usd == pytest.approx(usage.total.deferred_cost_usd, rel=1e-9)
    assert analytics.total_deferred_interactive_usd == pytest.approx(usage.total.deferred_interactive_usd, rel=1e-9)


async def test_anthropic_calls_of_a_prefix_group_carry_a_cache_breakpoint(
    start_gateway: StartGateway, fake_anthropic: FakeAnthropic
) -> None:
    _, channel = await start_gateway(config(fake_anthropic, max_batch=2))
    admin = Admin.on(channel)
    system = "You summarise contracts. " * 40
    await asyncio.gather(*(admin.gateway.Chat(deferred(f"c{n}", system=system), metadata=AUTH) for n in range(2)))
    marked = [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}]
    assert [r.body["system"] for r in fake_anthropic.requests] == [marked, marked]
    await admin.gateway.Chat(pb.ChatRequest(model="m", messages=deferred("c", system=system).messages), metadata=AUTH)
    assert fake_anthropic.requests[-1].body["system"] == system  # not deferred: no breakpoint


async def test_a_caller_that_goes_away_still_has_its_answer_stored_billed_and_fetchable(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    gateway, channel = await start_gateway(config(echo, max_batch=100, max_wait_s=2.0))
    admin = Admin.on(channel)
    secret, _ = await admin.key()
    request_id = "caller-chosen-0001"
    call = admin.gateway.Chat(deferred("left early"), metadata=(*bearer(secret), ("x-deferred-id", request_id)))
    [pending] = await accepted(admin, [request_id], bearer(secret))
    assert pending.state == pb.DEFERRED_STATE_PENDING
    assert pending.defer_up_to_s == 30.0
    call.cancel()
    assert echo.requests == []  # gone before its call was even sent
    for _ in range(200):
        found = await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=request_id), metadata=bearer(secret))
        if found.state != pb.DEFERRED_STATE_PENDING:
            break
        await asyncio.sleep(0.05)
    assert (found.state, found.request_id) == (pb.DEFERRED_STATE_DONE, request_id)
    assert found.response.message.content == "echo: left early"
    assert found.response.usage.cost_usd == pytest.approx(per_call_usd(), rel=1e-9)
    await gateway.audit.flush()
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="model"), metadata=AUTH)
    assert (usage.total.requests, usage.total.deferred_calls) == (1, 1)
    assert usage.total.cost_usd == pytest.approx(per_call_usd(), rel=1e-9)


async def test_get_deferred_refuses_unknown_ids_and_other_keys_calls(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    _, channel = await start_gateway(config(echo, max_batch=1))
    admin = Admin.on(channel)
    mine, _ = await admin.key()
    theirs, _ = await admin.key()
    response = await admin.gateway.Chat(deferred("hello"), metadata=bearer(mine))
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id="nope"), metadata=bearer(mine))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    assert reason_of(unknown.value) == "UNKNOWN_DEFERRED_CALL"
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=response.id), metadata=bearer(theirs))
    assert other.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(other.value) == "NOT_YOUR_CALL"
    found = await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=response.id), metadata=bearer(mine))
    assert (found.state, found.response.message.content) == (pb.DEFERRED_STATE_DONE, "echo: hello")


@pytest.mark.parametrize("seconds", [0.0, -1.0, 86_401.0])
async def test_a_wait_out_of_range_is_refused(start_gateway: StartGateway, echo: EchoOpenAI, seconds: float) -> None:
    _, channel = await start_gateway(config(echo))
    admin = Admin.on(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(deferred("x", seconds), metadata=AUTH)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(caught.value) == "BAD_DEFER"
    assert echo.requests == []


async def test_a_stream_cannot_be_deferred(start_gateway: StartGateway, echo: EchoOpenAI) -> None:
    _, channel = await start_gateway(config(echo))
    admin = Admin.on(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in admin.gateway.ChatStream(deferred("x"), metadata=AUTH):
            pass
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "use Chat" in (caught.value.details() or "")


async def test_a_provider_failure_reaches_the_caller_and_get_deferred(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    _, channel = await start_gateway(config(echo, max_batch=1))
    admin = Admin.on(channel)
    echo.fail(400, message="bad request from upstream")
    request_id = "doomed-call-1"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(deferred("doomed"), metadata=(*AUTH, ("x-deferred-id", request_id)))
    found = await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=request_id), metadata=AUTH)
    assert found.state == pb.DEFERRED_STATE_FAILED
    assert found.error_code == caught.value.code().name
    assert found.error_reason == reason_of(caught.value)


async def test_held_calls_of_a_stopped_gateway_are_resumed_and_billed_once_by_the_next(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    now = [time.time()]
    first, channel = await start_gateway(config(echo, max_batch=100, max_wait_s=600), clock=lambda: now[0])
    admin = Admin.on(channel)
    ids = [f"held-call-{n}" for n in range(3)]
    calls = [
        asyncio.ensure_future(admin.gateway.Chat(deferred(f"held {n}", 3600), metadata=(*AUTH, ("x-deferred-id", i))))
        for n, i in enumerate(ids)
    ]
    await accepted(admin, ids)
    assert first.deferred is not None
    await first.deferred.aclose()  # as if the worker died: its held calls were never sent, its leases lapse
    assert echo.requests == []
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as moved:
            await call
        assert moved.value.code() is grpc.StatusCode.UNAVAILABLE
        assert reason_of(moved.value) == "DEFERRED_CALL_MOVED"
    now[0] += 120  # past the stopped gateway's leases (lease_s 30)
    second, channel = await start_gateway(config(echo, max_batch=3, max_wait_s=600), clock=lambda: now[0])
    admin = Admin.on(channel)
    for _ in range(100):
        states = [
            (await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=i), metadata=AUTH)).state for i in ids
        ]
        if set(states) == {pb.DEFERRED_STATE_DONE}:
            break
        await asyncio.sleep(0.05)
    found = [await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id=i), metadata=AUTH) for i in ids]
    assert [f.response.message.content for f in found] == [f"echo: held {n}" for n in range(3)]
    assert len(echo.requests) == 3
    resumed = [r for r in await records(admin, second) if r.deferred.resumed_from]
    assert sorted(r.deferred.resumed_from for r in resumed) == ids
    assert all(r.peer.startswith("ipv4:127.0.0.1:") for r in resumed)  # the caller's, kept for its key's conditions
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="model"), metadata=AUTH)
    assert usage.total.requests == 3
    assert usage.total.cost_usd == pytest.approx(3 * per_call_usd(), rel=1e-9)


async def test_when_a_prefix_groups_first_call_fails_the_others_still_go(
    start_gateway: StartGateway, echo: EchoOpenAI
) -> None:
    _, channel = await start_gateway(config(echo, max_batch=3))
    admin = Admin.on(channel)
    echo.fail(400, message="the leader's request is refused")
    system = "You label support tickets. " * 40
    outcomes = await asyncio.gather(
        *(admin.gateway.Chat(deferred(f"ticket {n}", system=system), metadata=AUTH) for n in range(3)),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    answered = [o for o in outcomes if isinstance(o, pb.ChatResponse)]
    assert [f.code() for f in failed] == [grpc.StatusCode.INVALID_ARGUMENT]
    assert sorted(a.message.content for a in answered) == sorted(
        f"echo: {t}" for _, t in echo.arrivals[1:]
    )  # the two others, sent after the first failed


async def test_a_deferred_id_is_checked_and_used_once(start_gateway: StartGateway, echo: EchoOpenAI) -> None:
    _, channel = await start_gateway(config(echo, max_batch=1))
    admin = Admin.on(channel)
    named = (*AUTH, ("x-deferred-id", "report-2026-06-01"))
    await admin.gateway.Chat(deferred("first"), metadata=named)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await admin.gateway.Chat(deferred("second"), metadata=named)
    assert taken.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert reason_of(taken.value) == "DEFERRED_ID_TAKEN"
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await admin.gateway.Chat(deferred("third"), metadata=(*AUTH, ("x-deferred-id", "no spaces allowed")))
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(malformed.value) == "BAD_DEFERRED_ID"
    assert len(echo.requests) == 1  # neither refused call reached the provider
    found = await admin.gateway.GetDeferred(pb.GetDeferredRequest(request_id="report-2026-06-01"), metadata=AUTH)
    assert found.response.message.content == "echo: first"
