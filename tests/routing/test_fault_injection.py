"""Resilience proven by fault injection: gateways routing over fake providers that fail, rate-limit, hang, stall,
drop connections or answer garbage on command (tests/fakes), all through the gRPC API."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from llmgateway.v1 import gateway_pb2 as pb
from llmgateway.v1 import gateway_pb2_grpc

from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.server.fixtures import AUTH, StartGateway

Stub = gateway_pb2_grpc.GatewayStub
Setup = Callable[..., Awaitable[tuple[Stub, list[FakeOpenAI]]]]


def ask(model: str = "main", text: str = "hello", **fields: object) -> pb.ChatRequest:
    return pb.ChatRequest(model=model, messages=[pb.Message(role="user", content=text)], **fields)  # type: ignore[arg-type]


@pytest.fixture
def setup(start_gateway: StartGateway, fake_providers: FakeProviders) -> Setup:
    """Starts `count` fake OpenAI providers (models a, b, ...) and a gateway whose route `main` spans them."""

    async def start(route: str, count: int = 2, extra: str = "") -> tuple[Stub, list[FakeOpenAI]]:
        fakes: list[FakeOpenAI] = [await fake_providers.start("openai") for _ in range(count)]
        names = "abcdefgh"[:count]
        providers = "\n".join(
            f"  - {{name: p{n}, type: openai, base_url: '{f.url}', api_key_env: {f.key_env}, timeout_s: 5}}"
            for n, f in zip(names, fakes, strict=True)
        )
        models = "\n".join(f"  - {{name: {n}, provider: p{n}, upstream_model: gpt-4o-mini}}" for n in names)
        config = f"providers:\n{providers}\nmodels:\n{models}\nroutes:\n  - name: main\n{route}\n{extra}"
        _, channel = await start_gateway(config)
        return gateway_pb2_grpc.GatewayStub(channel), fakes

    return start


def attempts(response: pb.ChatResponse | pb.ChatChunk) -> list[tuple[str, str, str]]:
    return [(a.model, a.outcome, a.reason) for a in response.route.attempts]


def retry_delay(err: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


FALLBACK = """    strategy: fallback
    targets: [{model: a}, {model: b}]
    retries: {max_attempts: 3, backoff_ms: 1}"""


@pytest.mark.parametrize(
    ("inject", "reason"),
    [
        (lambda f: f.fail(500), "UPSTREAM_UNAVAILABLE"),
        (lambda f: f.fail(502), "UPSTREAM_UNAVAILABLE"),
        (lambda f: f.fail(503), "UPSTREAM_UNAVAILABLE"),
        (lambda f: f.drop(), "UPSTREAM_DISCONNECTED"),
        (lambda f: f.malformed(), "UPSTREAM_MALFORMED"),
        (lambda f: f.fail(401), "PROVIDER_AUTH_FAILED"),
    ],
    ids=["500", "502", "503", "drop", "malformed", "401"],
)
async def test_fallback_reaches_the_healthy_target(
    setup: Setup, inject: Callable[[FakeOpenAI], None], reason: str
) -> None:
    stub, (a, b) = await setup(FALLBACK)
    inject(a)
    response = await stub.Chat(ask(), metadata=AUTH)
    assert response.model == "b"
    assert attempts(response) == [("a", "error", reason), ("b", "ok", "")]
    assert len(a.requests) == 1
    assert len(b.requests) == 1


async def test_a_bad_request_is_not_retried(setup: Setup) -> None:
    stub, (a, b) = await setup(FALLBACK)
    a.fail(400, message="Invalid 'messages[0].content': string too long.")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask(), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "string too long" in (caught.value.details() or "")
    assert len(a.requests) == 1
    assert not b.requests, "a 4xx that will fail again is never retried elsewhere"


async def test_retry_after_is_honoured(setup: Setup) -> None:
    stub, (a,) = await setup(
        """    strategy: fallback
    targets: [{model: a}]
    retries: {max_attempts: 2, backoff_ms: 1}
    queue: {max_size: 0}""",
        count=1,
    )
    a.fail(429, retry_after=2)
    started = time.monotonic()
    response = await stub.Chat(ask(), metadata=AUTH, timeout=20)
    elapsed = time.monotonic() - started
    assert attempts(response) == [("a", "error", "UPSTREAM_RATE_LIMITED"), ("a", "ok", "")]
    assert elapsed >= 2, "the second attempt waited for the provider's Retry-After"
    # Waiting twice (cooldown, then a backoff as long) would take 4 s: the 1.5 s between is for a loaded machine.
    assert elapsed < 3.5, "and waited once: the cooldown is the backoff"


async def test_circuit_opens_then_a_probe_closes_it(setup: Setup) -> None:
    stub, (a, _b) = await setup(FALLBACK, extra="circuit_breaker: {consecutive_failures: 2, open_s: 0.5}")
    a.fail(500, times=2)
    for _ in range(2):
        assert (await stub.Chat(ask(), metadata=AUTH)).model == "b"
    skipped = await stub.Chat(ask(), metadata=AUTH)
    assert attempts(skipped) == [("b", "ok", "")], "an open breaker skips its target"
    assert len(a.requests) == 2
    await asyncio.sleep(0.6)
    probe = await stub.Chat(ask(), metadata=AUTH)
    assert attempts(probe) == [("a", "ok", "")], "after open_s one probe goes through and closes the breaker"
    assert (await stub.Chat(ask(), metadata=AUTH)).model == "a"


async def test_deadline_cancels_the_upstream_call(setup: Setup) -> None:
    stub, (a, _) = await setup(FALLBACK)
    a.hang()
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask(), metadata=AUTH, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.0
    await a.wait_disconnect()
    assert a.disconnects == 1


async def test_attempt_timeout_fails_over_from_a_hanging_target(setup: Setup) -> None:
    stub, (a, _) = await setup(FALLBACK + "\n    timeouts: {total_ms: 200}")
    a.hang()
    response = await stub.Chat(ask(), metadata=AUTH, timeout=5)
    assert attempts(response) == [("a", "error", "UPSTREAM_TIMEOUT"), ("b", "ok", "")]
    await a.wait_disconnect()


async def test_no_request_is_lost_or_answered_twice(setup: Setup) -> None:
    # Breakers that stay closed, so every request runs its full attempt budget through the injected failures.
    stub, (a, b) = await setup(FALLBACK, extra="circuit_breaker: {consecutive_failures: 1000, min_calls: 1000}")
    a.fail(503, times=30)
    b.fail(500, times=5)
    outcomes = await asyncio.gather(
        *(stub.Chat(ask(text=f"q{i}"), metadata=AUTH) for i in range(100)), return_exceptions=True
    )
    answered = [o for o in outcomes if isinstance(o, pb.ChatResponse)]
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(answered) + len(failed) == 100, "every call ends with exactly one answer or one status"
    assert all(err.code() == grpc.StatusCode.UNAVAILABLE for err in failed)
    assert len(failed) <= 5, "only calls whose three attempts all met an injected failure may fail"
    assert len({r.id for r in answered}) == len(answered)
    assert a.completed + b.completed == len(answered), "each answer was produced upstream exactly once"
    assert len(a.requests) + len(b.requests) == len(answered) + 35, "and each failure was tried exactly once"


async def test_stream_fails_over_invisibly_before_the_first_chunk(setup: Setup) -> None:
    stub, (a, b) = await setup(FALLBACK)
    a.fail(503)
    b.reply("one two three")
    chunks = [c async for c in stub.ChatStream(ask(), metadata=AUTH)]
    assert chunks[0].model == "b"
    assert "".join(c.delta for c in chunks) == "one two three"
    assert attempts(chunks[-1]) == [("a", "error", "UPSTREAM_UNAVAILABLE"), ("b", "ok", "")]


async def test_stream_failing_after_chunks_ends_with_an_error_not_a_splice(setup: Setup) -> None:
    stub, (a, b) = await setup(FALLBACK)
    a.reply("alpha beta gamma delta")
    a.drop(after_chunks=3)  # the role-only opening chunk, "alpha", " beta"
    call = stub.ChatStream(ask(), metadata=AUTH)
    received = [(await call.read()).delta, (await call.read()).delta]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "".join(received) == "alpha beta"
    assert not b.requests


async def test_a_stalled_stream_is_abandoned(setup: Setup) -> None:
    stub, (a, _) = await setup(FALLBACK + "\n    timeouts: {stall_ms: 200}")
    a.reply("alpha beta gamma")
    gate = a.pause_after(2)  # after the role-only opening chunk and "alpha"
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        _ = [c async for c in stub.ChatStream(ask(), metadata=AUTH)]
    gate.set()
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "stalled" in (caught.value.details() or "")
    assert time.monotonic() - started < 2.0


async def test_client_cancel_cancels_the_upstream_stream(setup: Setup) -> None:
    stub, (a, _) = await setup(FALLBACK)
    a.reply("alpha beta gamma delta")
    a.pause_after(2)
    call = stub.ChatStream(ask(), metadata=AUTH)
    first = await call.read()
    assert first.delta == "alpha"
    call.cancel()
    await a.wait_disconnect()


async def test_rate_limited_targets_queue_then_serve(setup: Setup) -> None:
    stub, (a,) = await setup(
        """    strategy: fallback
    targets: [{model: a}]
    retries: {max_attempts: 3, backoff_ms: 1}
    queue: {max_size: 8, max_wait_ms: 1500}""",
        count=1,
    )
    a.fail(429, retry_after=0.5)
    first = asyncio.ensure_future(stub.Chat(ask(text="first"), metadata=AUTH))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    waiting = await stub.Chat(ask(text="second"), metadata=AUTH)
    assert time.monotonic() - started >= 0.3, "the second call waited in the queue for the cooldown"
    assert attempts(waiting) == [("a", "ok", "")]
    assert attempts(await first)[-1][1] == "ok"


async def test_queue_bound_answers_resource_exhausted_with_retry_info(setup: Setup) -> None:
    stub, (a,) = await setup(
        """    strategy: fallback
    targets: [{model: a}]
    retries: {max_attempts: 2, backoff_ms: 1}
    queue: {max_size: 8, max_wait_ms: 500}""",
        count=1,
    )
    a.fail(429, retry_after=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask(), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    delay = retry_delay(caught.value)
    assert delay is not None
    assert 4.0 <= delay <= 5.0


async def test_interactive_calls_leave_the_queue_before_batch(setup: Setup) -> None:
    stub, (a,) = await setup(
        """    strategy: fallback
    targets: [{model: a}]
    retries: {max_attempts: 3, backoff_ms: 1}
    queue: {max_size: 8, max_wait_ms: 3000}""",
        count=1,
    )
    a.fail(429, retry_after=0.4)
    await stub.Chat(ask(), metadata=AUTH)  # trips the cooldown, then succeeds after it
    a.fail(429, retry_after=0.4)
    opener = asyncio.ensure_future(stub.Chat(ask(text="opener"), metadata=AUTH))
    await asyncio.sleep(0.1)
    a.slow(first_byte_delay=0.0, times=10)
    order: list[str] = []

    async def call(label: str, priority: int) -> None:
        await stub.Chat(ask(text=label, priority=priority), metadata=AUTH)  # type: ignore[arg-type]
        order.append(label)

    await asyncio.gather(
        call("batch-1", pb.PRIORITY_BATCH),
        call("batch-2", pb.PRIORITY_BATCH),
        call("interactive", pb.PRIORITY_INTERACTIVE),
    )
    await opener
    assert order[0] == "interactive"


async def test_hedging_races_a_second_target_and_cancels_the_loser(setup: Setup) -> None:
    stub, (a, _b) = await setup(FALLBACK + "\n    hedge: {percentile: 90, min_delay_ms: 50, max_delay_ms: 100}")
    a.hang()
    started = time.monotonic()
    response = await stub.Chat(ask(), metadata=AUTH)
    assert time.monotonic() - started < 1.0
    assert response.model == "b"
    outcomes = {(a.model, a.outcome, a.hedged) for a in response.route.attempts}
    assert outcomes == {("a", "cancelled", False), ("b", "ok", True)}
    await a.wait_disconnect()


async def test_the_hedge_delay_comes_from_the_first_targets_recent_ttft(setup: Setup) -> None:
    """With history, the hedge starts after the target's TTFT percentile (a few milliseconds here, clamped up to
    min_delay_ms), not after max_delay_ms (60 s): the call is answered by the hedge long before its 20 s deadline.
    Without history the delay is max_delay_ms, so this call would miss its deadline. The floor of 500 ms keeps a
    warm-up call slowed by a busy machine from hedging."""
    stub, (a, b) = await setup(FALLBACK + "\n    hedge: {percentile: 50, min_delay_ms: 500, max_delay_ms: 60000}")
    for i in range(10):
        assert (await stub.Chat(ask(text=f"warm {i}"), metadata=AUTH)).model == "a"
    assert not b.requests
    a.hang()
    response = await stub.Chat(ask(), metadata=AUTH, timeout=20)
    assert response.model == "b"
    assert {(x.model, x.outcome, x.hedged) for x in response.route.attempts} == {
        ("a", "cancelled", False),
        ("b", "ok", True),
    }
    await a.wait_disconnect()


async def test_a_hedge_that_loses_the_race_is_cancelled(setup: Setup) -> None:
    stub, (a, b) = await setup(FALLBACK + "\n    hedge: {percentile: 90, min_delay_ms: 10, max_delay_ms: 20}")
    held = a.hold()
    b.hang()
    call = asyncio.ensure_future(stub.Chat(ask(), metadata=AUTH, timeout=20))
    deadline = time.monotonic() + 15
    while not b.requests:  # the hedge started while the first target still held its answer
        assert time.monotonic() < deadline, "no hedge was started"
        await asyncio.sleep(0.01)
    held.set()
    response = await call
    assert response.model == "a"
    assert {(x.model, x.outcome, x.hedged) for x in response.route.attempts} == {
        ("a", "ok", False),
        ("b", "cancelled", True),
    }
    await b.wait_disconnect()


async def test_least_latency_moves_traffic_off_a_slowed_target(setup: Setup) -> None:
    stub, (a, b) = await setup(
        """    strategy: least_latency
    exploration: 0.1
    targets: [{model: a}, {model: b}]"""
    )
    for i in range(20):
        await stub.Chat(ask(text=f"warm {i}"), metadata=AUTH)
    a.slow(first_byte_delay=0.2, times=1000)
    b.slow(first_byte_delay=0.005, times=1000)
    answers = [await stub.Chat(ask(text=f"q{i}"), metadata=AUTH) for i in range(60)][20:]
    # Exploration sends a random tenth of calls to the other target by design; every call chosen by latency
    # must go to the fast one, and exploration must stay a minority.
    chosen_by_latency = Counter(r.model for r in answers if "exploring" not in r.route.reason)
    assert set(chosen_by_latency) == {"b"}, [(r.model, r.route.reason) for r in answers]
    assert chosen_by_latency["b"] >= 25


async def test_personal_data_quoted_by_a_provider_error_is_scrubbed(setup: Setup) -> None:
    stub, (a, _) = await setup(FALLBACK)
    a.fail(400, message="Invalid value 'jane.doe@example.com' for user; card 4111 1111 1111 1111 is not allowed")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Chat(ask(), metadata=AUTH)
    details = caught.value.details() or ""
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "jane.doe@example.com" not in details
    assert "4111" not in details
    assert "<EMAIL_1>" in details
    assert "<CREDIT_CARD_1>" in details
