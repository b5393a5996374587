"""The exact response cache through the Gateway and Admin APIs, against a fake OpenAI server that counts the calls it
really gets: hits skip the provider, every answer-changing parameter misses, TTLs expire, every CacheMode does what
it says, teams and namespaces never see each other's entries, streams are served from the cache, hits are accounted."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import gateway_pb2 as pb

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, ask, bearer, chat_request, stream
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.fakes.server import Answer
from tests.observe.test_gateway_observability import scrape, value
from tests.server.fixtures import AUTH, StartGateway

INPUT, OUTPUT = 2.5, 10.0


def config(fake: FakeOpenAI, *, cache: str = "cache: {exact: true, ttl_s: 600}") -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
    {cache}
  - name: plain
    provider: openai
    upstream_model: gpt-4o
routes:
  - name: faq
    targets: [{{model: plain}}]
    cache: {{exact: true, shared: true}}
  - name: tiered
    strategy: rules
    rules:
      - {{name: gold, when: {{metadata: {{tier: gold}}}}, target: gpt}}
    default: plain
    cache: {{exact: true, shared: true}}
guardrails:
  output:
    pii: {{default: allow, EMAIL_ADDRESS: redact}}
"""


@pytest.fixture
async def fake(fake_providers: FakeProviders) -> FakeOpenAI:
    started: FakeOpenAI = await fake_providers.start("openai")
    started.default_answer = Answer(text="Paris is the capital of France.", prompt_tokens=100, completion_tokens=8)
    return started


@pytest.fixture
async def running(start_gateway: StartGateway, fake: FakeOpenAI) -> tuple[Gateway, Admin]:
    gateway, channel = await start_gateway(config(fake))
    return gateway, Admin.on(channel)


def cached(mode: int = pb.CACHE_MODE_UNSPECIFIED, **fields: object) -> pb.CacheControl:
    return pb.CacheControl(mode=mode, **fields)  # type: ignore[arg-type]


async def test_a_repeated_request_is_answered_from_the_cache_without_the_provider(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    first = await ask(admin, chat_request("gpt", "What is the capital of France?"))
    second = await ask(admin, chat_request("gpt", "What is the capital of France?"))
    assert len(fake.requests) == 1
    assert first.HasField("cache")
    assert not first.cache.hit
    assert second.cache.hit
    assert second.cache.kind == "exact"
    assert second.cache.similarity == 1.0
    assert second.cache.entry_id
    assert second.cache.age_seconds == 0
    assert second.message.content == first.message.content == "Paris is the capital of France."
    assert (second.model, second.provider, second.finish_reason) == ("gpt", "openai", "stop")
    # The stored answer's size, reported as cached; a hit costs nothing by default.
    assert (second.usage.prompt_tokens, second.usage.completion_tokens) == (100, 8)
    assert second.usage.cached_prompt_tokens == 100
    assert second.usage.cost_usd == 0.0
    assert first.usage.cost_usd == pytest.approx((100 * INPUT + 8 * OUTPUT) / 1e6)


async def test_every_answer_changing_parameter_misses_and_caller_labels_do_not(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    base = chat_request("gpt", "Name a colour")
    await ask(admin, base)
    variants: list[pb.ChatRequest] = []
    for field, val in [
        ("temperature", 0.3),
        ("top_p", 0.5),
        ("max_tokens", 20),
        ("seed", 7),
        ("stop", ["\n"]),
        ("tool_choice", "none"),
    ]:
        variant = pb.ChatRequest()
        variant.CopyFrom(base)
        if field == "stop":
            variant.stop.extend(["\n"])
        elif field == "tool_choice":
            variant.tools.append(pb.Tool(name="lookup", parameters_json='{"type": "object"}'))
        else:
            setattr(variant, field, val)
        variants.append(variant)
    json_answer = pb.ChatRequest()
    json_answer.CopyFrom(base)
    json_answer.messages[0].content = "Name a colour, as JSON"
    json_answer.response_format.type = pb.ResponseFormat.TYPE_JSON_OBJECT
    with_system = pb.ChatRequest(
        model="gpt", messages=[pb.Message(role="system", content="Answer in French."), *base.messages]
    )
    other_text = chat_request("gpt", "Name a colour!")
    other_model = chat_request("plain", "Name a colour", cache=cached(pb.CACHE_MODE_READ_WRITE))
    for request in [*variants, with_system, other_text, other_model]:
        response = await ask(admin, request)
        assert not response.cache.hit, request
    asked = len(fake.requests)
    assert asked == 1 + len(variants) + 3
    # What the caller labels a request with does not change the answer: still a hit.
    labelled = pb.ChatRequest()
    labelled.CopyFrom(base)
    labelled.user = "someone"
    labelled.metadata["app"] = "search"
    labelled.priority = pb.PRIORITY_BATCH
    assert (await ask(admin, labelled)).cache.hit
    assert len(fake.requests) == asked


async def test_an_entry_expires_after_its_ttl(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    request = chat_request("gpt", "Short-lived", cache=cached(ttl_seconds=2))
    await ask(admin, request)
    assert (await ask(admin, request)).cache.hit
    await asyncio.sleep(2.1)
    assert not (await ask(admin, request)).cache.hit
    assert len(fake.requests) == 2


async def test_cache_modes(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    # OFF: neither read nor write, even where the config caches.
    off = chat_request("gpt", "mode test", cache=cached(pb.CACHE_MODE_OFF))
    assert not (await ask(admin, off)).HasField("cache")
    read_only = chat_request("gpt", "mode test", cache=cached(pb.CACHE_MODE_READ_ONLY))
    assert not (await ask(admin, read_only)).cache.hit  # OFF stored nothing
    assert not (await ask(admin, read_only)).cache.hit  # READ_ONLY stores nothing either
    assert len(fake.requests) == 3
    # The default mode on a model without a cache config: not consulted; READ_WRITE turns it on for the call.
    plain = chat_request("plain", "mode test")
    assert not (await ask(admin, plain)).HasField("cache")
    read_write = chat_request("plain", "mode test", cache=cached(pb.CACHE_MODE_READ_WRITE))
    assert not (await ask(admin, read_write)).cache.hit
    assert (await ask(admin, read_write)).cache.hit
    assert (await ask(admin, read_only)).cache.hit is False  # another model: another entry
    assert len(fake.requests) == 6
    # WRITE_ONLY always asks the provider and replaces the entry: a refresh.
    request = chat_request("gpt", "refresh me")
    await ask(admin, request)
    fake.reply("A fresher answer.")
    refresh = chat_request("gpt", "refresh me", cache=cached(pb.CACHE_MODE_WRITE_ONLY))
    refreshed = await ask(admin, refresh)
    assert refreshed.message.content == "A fresher answer."
    assert not refreshed.cache.hit
    again = await ask(admin, request)
    assert again.cache.hit
    assert again.message.content == "A fresher answer."
    assert len(fake.requests) == 8


async def test_teams_and_namespaces_never_share_entries_unless_a_route_is_shared(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    alpha, _ = await admin.key("alpha")
    beta, _ = await admin.key("beta")
    request = chat_request("gpt", "Team secret plans")
    await ask(admin, request, alpha)
    assert (await ask(admin, request, alpha)).cache.hit
    assert not (await ask(admin, request, beta)).cache.hit
    in_tests = chat_request("gpt", "Team secret plans", cache=cached(namespace="tests"))
    assert not (await ask(admin, in_tests, alpha)).cache.hit
    assert (await ask(admin, in_tests, alpha)).cache.hit
    assert len(fake.requests) == 3
    # A route whose cache is declared shared serves every team.
    faq = chat_request("faq", "Opening hours?")
    await ask(admin, faq, alpha)
    assert (await ask(admin, faq, beta)).cache.hit
    assert len(fake.requests) == 4


async def test_a_stream_is_served_from_the_cache_and_fills_it(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    fake.default_answer = Answer(text=" ".join(f"word{i}" for i in range(60)), prompt_tokens=50, completion_tokens=60)
    request = chat_request("gpt", "Stream me")

    first = await stream(admin, request)
    assert not first[-1].cache.hit
    second = await stream(admin, request)
    assert len(fake.requests) == 1
    assert len(second) > 3  # pieces, not one blob
    assert "".join(c.delta for c in second) == "".join(c.delta for c in first) == fake.default_answer.text
    assert (second[0].model, second[0].provider) == ("gpt", "openai")
    final = second[-1]
    assert final.cache.hit
    assert final.cache.kind == "exact"
    assert final.finish_reason == "stop"
    assert final.usage.completion_tokens == 60
    assert final.usage.cost_usd == 0
    # What a stream stored serves a unary call too.
    assert (await ask(admin, request)).cache.hit


async def test_restricted_calls_neither_read_nor_fill_the_cache(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    gateway, admin = running

    async def ask_as(level: str, text: str) -> pb.ChatResponse:
        metadata = (*AUTH, ("x-data-classification", level))
        response: pb.ChatResponse = await admin.gateway.Chat(chat_request("gpt", text), metadata=metadata)
        return response

    assert not (await ask_as("restricted", "Summarise the merger memo")).HasField("cache")
    assert not (await ask_as("restricted", "Summarise the merger memo")).HasField("cache")
    assert len(fake.requests) == 2
    # The same prompt at a lower level does not find what a restricted call would have stored: nothing was stored.
    assert not (await ask_as("confidential", "Summarise the merger memo")).cache.hit
    assert (await ask_as("confidential", "Summarise the merger memo")).cache.hit
    assert len(fake.requests) == 3
    await gateway.audit.flush()
    stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
    assert stats.entries == 1


async def test_a_card_number_found_by_the_input_guardrails_keeps_the_call_out_of_the_cache(
    start_gateway: StartGateway, fake: FakeOpenAI
) -> None:
    guarded = config(fake).replace("guardrails:\n", "guardrails:\n  input:\n    pii: {default: allow}\n")
    _, channel = await start_gateway(guarded)
    admin = Admin.on(channel)
    card = chat_request("gpt", "Is 4111 1111 1111 1111 a valid card number?")
    plain = chat_request("gpt", "Is a Luhn checksum enough to validate a card number?")

    for _ in range(2):
        assert not (await ask(admin, card)).HasField("cache")
        assert not (await stream(admin, card))[-1].HasField("cache")
    assert len(fake.requests) == 4
    assert not (await stream(admin, plain))[-1].cache.hit
    assert (await stream(admin, plain))[-1].cache.hit
    assert len(fake.requests) == 5


async def test_a_streamed_tool_call_is_stored_and_served_whole(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    fake.default_answer = Answer(
        text="Let me look that up.", tool_calls=[("lookup", {"city": "Paris", "days": 3}), ("clock", {"tz": "CET"})]
    )
    request = chat_request("gpt", "Weather and time in Paris?")
    request.tools.extend([pb.Tool(name=n, parameters_json='{"type": "object"}') for n in ("lookup", "clock")])

    def calls(chunks: list[pb.ChatChunk]) -> dict[int, tuple[str, str, str]]:
        """Each call's id, name and arguments, put together from its fragments."""
        whole: dict[int, tuple[str, str, str]] = {}
        for chunk in chunks:
            for part in chunk.tool_calls:
                call_id, name, arguments = whole.get(part.index, ("", "", ""))
                whole[part.index] = (call_id or part.id, name or part.name, arguments + part.arguments_delta)
        return whole

    first = await stream(admin, request)
    assert not first[-1].cache.hit
    second = await stream(admin, request)
    assert len(fake.requests) == 1
    assert second[-1].cache.hit
    assert second[-1].finish_reason == "tool_calls"
    assert calls(second) == calls(first)
    assert [(name, arguments) for _, name, arguments in calls(second).values()] == [
        ("lookup", '{"city":"Paris","days":3}'),
        ("clock", '{"tz":"CET"}'),
    ]
    assert "".join(c.delta for c in second) == "".join(c.delta for c in first) == "Let me look that up."
    unary = await ask(admin, request)
    assert unary.cache.hit
    assert unary.message.content == "Let me look that up."
    assert [(c.name, c.arguments_json) for c in unary.message.tool_calls] == [
        (name, arguments) for _, name, arguments in calls(first).values()
    ]
    # A call cut off by max_tokens has arguments that are not whole JSON: it is not stored.
    fake.default_answer = Answer(tool_calls=[("lookup", {"city": "Rome"})], finish="length")
    cut = chat_request("gpt", "Weather in Rome?")
    cut.tools.extend(request.tools)
    for _ in range(2):
        assert not (await stream(admin, cut))[-1].cache.hit
    assert len(fake.requests) == 3


async def test_hits_are_accounted_in_the_ledger_audit_log_and_metrics(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    gateway, admin = running
    secret, info = await admin.key("alpha")
    request = chat_request("gpt", "Count me")
    first = await ask(admin, request, secret)
    hits = [await ask(admin, request, secret) for _ in range(3)]
    await gateway.audit.flush()
    usage = await admin.admin.GetUsage(apb.GetUsageRequest(group_by="key", key_id=info.id), metadata=AUTH)
    [row] = usage.rows
    assert (row.requests, row.prompt_tokens, row.completion_tokens, row.cache_hits) == (4, 100, 8, 3)
    assert row.cost_usd == pytest.approx(first.usage.cost_usd)
    assert row.cache_saved_usd == pytest.approx(3 * first.usage.cost_usd)
    found = await admin.admin.QueryAudit(apb.QueryAuditRequest(request_id=hits[0].id), metadata=AUTH)
    [record] = found.records
    assert record.cache.hit
    assert record.cache.kind == "exact"
    assert record.cache.entry_id == hits[0].cache.entry_id
    assert record.cache_saved_usd == pytest.approx(first.usage.cost_usd)
    assert record.cost_usd == 0.0
    assert record.provider == "openai"
    samples = await scrape(gateway.metrics_server.url)  # type: ignore[union-attr]
    assert value(samples, "llm_gateway_cache_lookups_total", kind="exact", result="hit") == 3
    assert value(samples, "llm_gateway_cache_lookups_total", kind="exact", result="miss") == 1
    assert value(samples, "llm_gateway_requests_total", provider="cache") == 3
    assert value(samples, "llm_gateway_cache_saved_usd_total") == pytest.approx(3 * first.usage.cost_usd)


async def test_output_guardrails_run_on_cached_answers(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    fake.default_answer = Answer(text="Write to ops@example.com for access.")
    request = chat_request("gpt", "Who grants access?")
    first = await ask(admin, request)
    second = await ask(admin, request)
    assert second.cache.hit
    assert "ops@example.com" not in second.message.content
    assert second.message.content == first.message.content
    assert [(g.kind, g.action) for g in second.guardrails] == [("EMAIL_ADDRESS", "redact")]


async def test_failed_and_filtered_answers_are_never_cached(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    fake.fail(500, times=10)
    request = chat_request("gpt", "Fail me")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await ask(admin, request)
    assert failed.value.code() is grpc.StatusCode.UNAVAILABLE
    fake.faults.clear()
    assert not (await ask(admin, request)).cache.hit
    fake.reply(Answer(text="Filtered.", finish="content_filter"))
    filtered = chat_request("gpt", "Filter me")
    assert (await ask(admin, filtered)).finish_reason == "content_filter"
    assert not (await ask(admin, filtered)).cache.hit


async def test_admin_purges_and_counts_entries(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    _, admin = running
    alpha, _ = await admin.key("alpha")
    lead, _ = await admin.key("beta", role="team-admin")
    member, _ = await admin.key("beta")
    await ask(admin, chat_request("gpt", "one"), alpha)
    await ask(admin, chat_request("gpt", "two"), alpha)
    await ask(admin, chat_request("gpt", "one", cache=cached(namespace="ns1")), alpha)
    await ask(admin, chat_request("gpt", "one"), member)
    await ask(admin, chat_request("gpt", "one"), alpha)  # a hit
    stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
    assert (stats.backend, stats.available, stats.entries) == ("memory", True, 4)
    assert stats.exact_hits == 1
    assert stats.misses == 4
    assert 0 < stats.bytes <= stats.max_bytes
    beta_stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(team="beta"), metadata=bearer(lead))
    assert beta_stats.entries == 1
    assert beta_stats.exact_hits == 0
    # A team admin purges only its own team; a member nothing.
    for key, team in [(lead, "alpha"), (lead, ""), (member, "beta")]:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await admin.admin.PurgeCache(apb.PurgeCacheRequest(team=team), metadata=bearer(key))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    purged = await admin.admin.PurgeCache(apb.PurgeCacheRequest(team="alpha", namespace="ns1"), metadata=AUTH)
    assert purged.purged == 1
    assert not (await ask(admin, chat_request("gpt", "one", cache=cached(namespace="ns1")), alpha)).cache.hit
    assert (await ask(admin, chat_request("gpt", "one"), alpha)).cache.hit
    by_team = await admin.admin.PurgeCache(apb.PurgeCacheRequest(team="beta"), metadata=bearer(lead))
    assert by_team.purged == 1
    everything = await admin.admin.PurgeCache(apb.PurgeCacheRequest(model="gpt"), metadata=AUTH)
    assert everything.purged == 3
    assert (await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)).entries == 0


async def test_bad_cache_controls_are_refused_with_the_field_to_fix(running: tuple[Gateway, Admin]) -> None:
    _, admin = running
    for control, words in [
        (cached(namespace="has space"), "namespace"),
        (cached(ttl_seconds=31 * 86400), "ttl_seconds"),
        (cached(mode=99), "mode"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ask(admin, chat_request("gpt", "bad", cache=control))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (refused.value.details() or "")


async def test_a_cached_stream_cut_short_costs_nothing(running: tuple[Gateway, Admin], fake: FakeOpenAI) -> None:
    gateway, admin = running
    # Longer than HTTP/2's flow-control window (64 KB): the replay cannot finish before the cancel reaches it.
    words = 40_000
    fake.default_answer = Answer(
        text=" ".join(f"w{i}" for i in range(words)), prompt_tokens=50, completion_tokens=words
    )
    request = chat_request("gpt", "A long one")
    await ask(admin, request)
    call = admin.gateway.ChatStream(request, metadata=AUTH)
    first = await call.read()  # type: ignore[attr-defined]
    call.cancel()
    await asyncio.sleep(0.1)
    await gateway.audit.flush()
    found = await admin.admin.QueryAudit(apb.QueryAuditRequest(request_id=first.id), metadata=AUTH)
    [record] = found.records
    assert record.status == "CANCELLED"
    assert record.cache.hit
    assert record.cost_usd == 0.0
    assert (record.prompt_tokens, record.completion_tokens) == (0, 0)


async def test_identical_unary_misses_in_flight_make_one_provider_call(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    fake.slow(first_byte_delay=0.3, times=10)
    request = chat_request("gpt", "Everyone asks this at once")
    answers = await asyncio.gather(*(ask(admin, request) for _ in range(5)))
    assert len(fake.requests) == 1
    assert sorted(a.cache.hit for a in answers) == [False, True, True, True, True]
    assert {a.message.content for a in answers} == {"Paris is the capital of France."}


async def test_waiting_calls_ask_the_provider_themselves_when_the_first_one_fails(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    fake.fail(400, message="bad request for the first caller")
    fake.slow(first_byte_delay=0.2, times=10)
    request = chat_request("gpt", "The first caller fails")
    outcomes = await asyncio.gather(*(ask(admin, request) for _ in range(3)), return_exceptions=True)
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(failed) == 1
    assert all(isinstance(o, pb.ChatResponse) and o.message.content for o in outcomes if o not in failed)
    assert len(fake.requests) >= 2


async def test_streams_do_not_wait_for_an_identical_call_in_flight(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    fake.slow(first_byte_delay=0.3, times=10)
    request = chat_request("gpt", "Stream it to everyone")

    await asyncio.gather(*(stream(admin, request) for _ in range(3)))
    assert len(fake.requests) == 3


async def test_calls_the_router_sends_to_another_model_never_share_an_entry(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    gold = chat_request("tiered", "Summarise our refund policy")
    gold.metadata["tier"] = "gold"
    plain = chat_request("tiered", "Summarise our refund policy")
    first = await ask(admin, gold)
    assert first.model == "gpt"
    other = await ask(admin, plain)  # same words, same (shared) route, but the rules pick another model
    assert not other.cache.hit
    assert other.model == "plain"
    assert (await ask(admin, gold)).cache.hit
    assert (await ask(admin, plain)).cache.hit
    assert len(fake.requests) == 2


async def test_a_unary_call_does_not_wait_behind_an_identical_stream(
    running: tuple[Gateway, Admin], fake: FakeOpenAI
) -> None:
    _, admin = running
    fake.slow(first_byte_delay=0.3, times=10)
    request = chat_request("gpt", "Streamed first, then asked whole")

    streaming = asyncio.ensure_future(stream(admin, request))
    await asyncio.sleep(0.05)
    unary = await ask(admin, request)
    await streaming
    assert not unary.cache.hit  # it asked the provider itself instead of waiting for the whole stream
    assert len(fake.requests) == 2
