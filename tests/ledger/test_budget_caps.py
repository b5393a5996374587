"""Hard budget caps under many concurrent callers, through the gRPC API, against a fake OpenAI whose reported usage
is set exactly below, equal to or above the gateway's estimate.

The prices make each call's estimate a power of two in dollars (9 prompt tokens at $2.50 and 779 answer tokens at
$10 per million: $0.0078125), so every sum of estimates and costs is exact in floating point and a cap of exactly k
estimates admits exactly k calls: one more or one less is a bug (a `>=` for `>`, a reservation too small or missing).
`FakeOpenAI.hold()` keeps every admitted call in flight until the test lets them go, so "calls in flight at once"
does not depend on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import gateway_pb2 as pb

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import Answer
from tests.server.fixtures import AUTH, StartGateway

INPUT, OUTPUT = 2.5, 10.0
PROMPT = "Hello there"
PROMPT_TOKENS = 9
"""What the gateway counts for PROMPT on gpt-4o (o200k_base, OpenAI's message framing); the tests check it."""
MAX_TOKENS = 779
ESTIMATE = (PROMPT_TOKENS * INPUT + MAX_TOKENS * OUTPUT) / 1e6
CALLS_ALLOWED = 37
CAP = CALLS_ALLOWED * ESTIMATE
assert ESTIMATE == 2**-7, "the prices must keep every sum of estimates exact"


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
    max_output_tokens: 1000
"""


@pytest.fixture
async def fake(fake_providers: FakeProviders) -> FakeOpenAI:
    started: FakeOpenAI = await fake_providers.start("openai")
    started.default_answer = Answer(prompt_tokens=PROMPT_TOKENS, completion_tokens=MAX_TOKENS)
    return started


@pytest.fixture
async def running(start_gateway: StartGateway, fake: FakeOpenAI) -> tuple[Gateway, Admin]:
    gateway, channel = await start_gateway(config(fake))
    admin = Admin.on(channel)
    counted = await admin.gateway.CountTokens(
        pb.CountTokensRequest(model="gpt", messages=[pb.Message(role="user", content=PROMPT)]), metadata=AUTH
    )
    assert (counted.tokens, counted.exact) == (PROMPT_TOKENS, True)
    return gateway, admin


def ask() -> pb.ChatRequest:
    return chat_request("gpt", PROMPT, max_tokens=MAX_TOKENS)


async def chat(admin: Admin, secret: str) -> pb.ChatResponse:
    response: pb.ChatResponse = await admin.gateway.Chat(ask(), metadata=bearer(secret))
    return response


async def capped_keys(admin: Admin, scope: str, keys: int) -> tuple[list[str], str]:
    """`keys` keys of one team; the cap is on the first key (scope "key") or on the team. Returns the secrets and
    the capped subject."""
    team = f"capped-{scope}"
    secrets = [(await admin.key(team=team))[0] for _ in range(keys - 1)]
    first, info = await admin.key(team=team)
    subject = info.id if scope == "key" else team
    await admin.admin.SetBudget(
        apb.SetBudgetRequest(budget=apb.Budget(scope=scope, subject=subject, period="day", hard_usd=CAP)),
        metadata=AUTH,
    )
    return ([first] if scope == "key" else [first, *secrets]), subject


async def spent(gateway: Gateway, admin: Admin, scope: str, subject: str) -> float:
    """The subject's spend as the ledger holds it, checked against what the budget book says."""
    await gateway.audit.flush()
    where = {"key_id": subject} if scope == "key" else {"team": subject}
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="team", **where), metadata=AUTH)  # type: ignore[arg-type]
    if scope == "key":
        key = await admin.admin.GetKey(apb.GetKeyRequest(key_id=subject), metadata=AUTH)
        assert key.budgets[0].spent_usd == pytest.approx(usage.total.cost_usd, rel=1e-12, abs=0)
    return usage.total.cost_usd


@contextlib.asynccontextmanager
async def held_calls(
    admin: Admin, fake: FakeOpenAI, secrets: list[str], callers: int
) -> AsyncIterator[list[asyncio.Task[pb.ChatResponse]]]:
    """Starts `callers` calls, round robin over the keys, and yields once each is either refused or held at the
    fake provider; on leaving, the held calls are answered and every call has ended."""
    gate = fake.hold()
    keys = itertools.cycle(secrets)
    calls = [asyncio.create_task(chat(admin, next(keys))) for _ in range(callers)]
    try:
        deadline = time.monotonic() + 30
        while fake.in_flight + sum(call.done() for call in calls) < callers:
            assert time.monotonic() < deadline, f"{fake.in_flight} held, {sum(c.done() for c in calls)} done"
            await asyncio.sleep(0.01)
        yield calls
    finally:
        gate.set()
        await asyncio.gather(*calls, return_exceptions=True)


def outcomes(calls: list[asyncio.Task[pb.ChatResponse]]) -> list[pb.ChatResponse | BaseException]:
    return [call.exception() or call.result() for call in calls]


def refusals(results: list[pb.ChatResponse | BaseException]) -> list[grpc.aio.AioRpcError]:
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, grpc.aio.AioRpcError) for r in refused), refused
    errors = [r for r in refused if isinstance(r, grpc.aio.AioRpcError)]
    assert {(e.code(), reason_of(e)) for e in errors} <= {(grpc.StatusCode.RESOURCE_EXHAUSTED, "BUDGET_EXCEEDED")}
    return errors


async def refused_now(admin: Admin, secret: str) -> bool:
    """Makes one call: True when the budget refused it, False when it was served."""
    call = asyncio.ensure_future(chat(admin, secret))
    await asyncio.wait([call])
    if call.exception() is None:
        return False
    refusals([call.exception()])  # type: ignore[list-item]
    return True


@pytest.mark.parametrize(("scope", "callers"), [("key", 120), ("team", 200)])
async def test_a_cap_admits_exactly_what_it_allows_while_every_call_is_in_flight(
    running: tuple[Gateway, Admin], fake: FakeOpenAI, scope: str, callers: int
) -> None:
    """Nothing settles until every caller was admitted or refused: only the reservations of calls in flight keep
    the cap. Team caps are kept across the team's keys, none of which has a budget of its own."""
    gateway, admin = running
    secrets, subject = await capped_keys(admin, scope, keys=1 if scope == "key" else 5)
    async with held_calls(admin, fake, secrets, callers) as calls:
        assert fake.in_flight == CALLS_ALLOWED
    assert len(refusals(outcomes(calls))) == callers - CALLS_ALLOWED
    assert fake.completed == CALLS_ALLOWED  # refused calls never reached the provider
    assert await spent(gateway, admin, scope, subject) == CAP
    assert await refused_now(admin, secrets[-1])


@pytest.mark.parametrize("scope", ["key", "team"])
@pytest.mark.parametrize("usage", ["equal", "below"])
async def test_callers_calling_until_refused_never_take_a_cap_over(
    running: tuple[Gateway, Admin], fake: FakeOpenAI, scope: str, usage: str
) -> None:
    """150 callers each call until refused while earlier calls settle: when providers bill at most the estimate,
    spend stays within the cap, and calls are refused only when the cap has less than one estimate left."""
    gateway, admin = running
    if usage == "below":
        fake.default_answer = Answer(prompt_tokens=PROMPT_TOKENS, completion_tokens=MAX_TOKENS // 3)
    secrets, subject = await capped_keys(admin, scope, keys=1 if scope == "key" else 3)

    served = 0

    async def caller(secret: str) -> None:
        nonlocal served
        while served <= 4 * CAP / ESTIMATE * 3 and not await refused_now(admin, secret):  # bounded if caps leak
            served += 1

    keys = itertools.cycle(secrets)
    await asyncio.gather(*(caller(next(keys)) for _ in range(150)))
    total = await spent(gateway, admin, scope, subject)
    assert fake.completed == served
    if usage == "equal":
        assert served == CALLS_ALLOWED
        assert total == CAP
    else:
        per_call = (PROMPT_TOKENS * INPUT + MAX_TOKENS // 3 * OUTPUT) / 1e6
        assert served > CALLS_ALLOWED  # what calls did not spend was given back
        assert total == pytest.approx(served * per_call)
        assert total <= CAP
        # Callers stopped at their first refusal, possibly while others still held reservations: one more pass,
        # with nothing in flight, uses what those left.
        while not await refused_now(admin, secrets[0]):
            pass
        assert CAP - await spent(gateway, admin, scope, subject) < ESTIMATE


@pytest.mark.parametrize("scope", ["key", "team"])
async def test_usage_above_the_estimate_overshoots_by_the_sum_of_the_excesses_in_flight(
    running: tuple[Gateway, Admin], fake: FakeOpenAI, scope: str
) -> None:
    """A provider that bills more prompt tokens than the gateway counted (tool definitions, another tokenizer):
    the cap is passed by the excess of every call in flight at the last admission, not by one call's."""
    gateway, admin = running
    extra_prompt_tokens = 40
    excess = extra_prompt_tokens * INPUT / 1e6
    fake.default_answer = Answer(prompt_tokens=PROMPT_TOKENS + extra_prompt_tokens, completion_tokens=MAX_TOKENS)
    secrets, subject = await capped_keys(admin, scope, keys=1 if scope == "key" else 4)
    async with held_calls(admin, fake, secrets, 100) as calls:
        in_flight = fake.in_flight
        assert in_flight == CALLS_ALLOWED
    refusals(outcomes(calls))
    overshoot = await spent(gateway, admin, scope, subject) - CAP
    assert overshoot == pytest.approx(in_flight * excess)
    assert overshoot > excess  # more than one call's error of estimate
    assert await refused_now(admin, secrets[0])
