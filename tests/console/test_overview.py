"""The overview's figures and a call's page from the audit log: a stream's time to first chunk (kept in its record,
drawn per model), and the link to a call's trace by its W3C trace id."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from llmgateway.v1 import admin_pb2 as apb
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.admin.compliance_files import when
from gateway.console.pages import trace_link
from gateway.observe.live import FORGET_S
from gateway.records.audit import AuditRecord
from gateway.records.live import ProcessLive
from gateway.server.app import Gateway
from gateway.store.live import SqlLiveStore
from tests.admin.helpers import Admin, ask, chat_request, stream
from tests.console.helpers import Browser
from tests.server.fixtures import AUTH, TEST_KEY, StartGateway

FIRST_TOKEN_MS = 60
CONFIG = f"""
providers:
  - {{name: sim, type: simulated, simulation: {{max_answer_tokens: 8, time_to_first_token_ms: {FIRST_TOKEN_MS}}}}}
models:
  - {{name: fast, provider: sim, tokenizer: o200k_base, capabilities: [streaming]}}
  - {{name: other, provider: sim, tokenizer: o200k_base, capabilities: [streaming]}}
"""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),)


async def overview(browser: Browser) -> dict[str, Any]:
    status, body = await browser.get("/api/overview?range=15m")
    assert status == 200
    data: dict[str, Any] = orjson.loads(body)
    return data


async def audit_of(gateway: Gateway, admin: Admin, request_id: str) -> apb.AuditRecord:
    await gateway.audit.flush()
    found = await admin.admin.QueryAudit(apb.QueryAuditRequest(request_id=request_id), metadata=AUTH)
    [record] = found.records
    return record


async def call_pages(gateway: Gateway, *request_ids: str) -> list[str]:
    """The calls' pages as an admin sees them."""
    browser = Browser(gateway)
    try:
        await browser.sign_in(TEST_KEY)
        return [(await browser.get(f"/calls/{request_id}"))[1] for request_id in request_ids]
    finally:
        await browser.close()


async def test_a_streams_time_to_first_chunk_is_kept_and_drawn_per_model(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    streamed = [(await stream(admin, chat_request("fast")))[0].id for _ in range(3)]
    unary = (await ask(admin, chat_request("other"))).id
    browser = Browser(gateway)
    try:
        await browser.sign_in(TEST_KEY)
        data = await overview(browser)
        assert set(data["latency"]) == {"fast / sim", "other / sim"}
        assert set(data["ttfc"]) == {"fast / sim"}  # the unary call sent no chunk
        first = data["ttfc"]["fast / sim"]
        assert FIRST_TOKEN_MS <= first["p50"] <= first["p99"]
        assert first["p99"] <= data["latency"]["fast / sim"]["p99"]

        record = await audit_of(gateway, admin, streamed[0])
        assert record.HasField("time_to_first_chunk_ms")
        assert FIRST_TOKEN_MS <= record.time_to_first_chunk_ms <= record.latency_ms
        assert not (await audit_of(gateway, admin, unary)).HasField("time_to_first_chunk_ms")

        _, page = await browser.get(f"/calls/{streamed[0]}")
        assert f'id="ttfc">{record.time_to_first_chunk_ms:.1f} ms<' in page
        _, page = await browser.get(f"/calls/{unary}")
        assert 'id="ttfc"' not in page
    finally:
        await browser.close()


async def test_a_traced_calls_page_links_to_its_trace(start_gateway: StartGateway) -> None:
    exporter = InMemorySpanExporter()
    config = CONFIG + "observe: {trace_url_template: 'https://tempo.example/trace/{trace_id}'}\n"
    gateway, channel = await start_gateway(config, span_exporter=exporter, http=True)
    admin = Admin.on(channel)
    own = (await ask(admin, chat_request("fast"))).id
    continued = (await admin.gateway.Chat(chat_request("fast"), metadata=AUTH + TRACEPARENT)).id
    assert gateway.tracing is not None
    gateway.tracing.force_flush()
    [server] = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "llmgateway.v1.Gateway/Chat" and (s.attributes or {}).get("llm_gateway.request_id") == own
    ]
    exported = f"{server.context.trace_id:032x}"
    assert exported != TRACE_ID
    assert (await audit_of(gateway, admin, own)).trace_id == exported
    assert (await audit_of(gateway, admin, continued)).trace_id == TRACE_ID
    own_page, continued_page = await call_pages(gateway, own, continued)
    assert f'href="https://tempo.example/trace/{exported}" id="trace"' in own_page
    assert f'href="https://tempo.example/trace/{TRACE_ID}" id="trace"' in continued_page


async def test_untraced_calls_keep_the_callers_trace_id_or_none(start_gateway: StartGateway) -> None:
    config = CONFIG + "observe: {trace_url_template: 'https://jaeger.example/trace/{trace_id}'}\n"
    gateway, channel = await start_gateway(config, http=True)
    admin = Admin.on(channel)
    continued = (await admin.gateway.Chat(chat_request("fast"), metadata=AUTH + TRACEPARENT)).id
    alone = (await ask(admin, chat_request("fast"))).id
    malformed = (await admin.gateway.Chat(chat_request("fast"), metadata=(*AUTH, ("traceparent", "00-zz")))).id
    assert (await audit_of(gateway, admin, continued)).trace_id == TRACE_ID
    assert (await audit_of(gateway, admin, alone)).trace_id == ""
    assert (await audit_of(gateway, admin, malformed)).trace_id == ""
    continued_page, alone_page = await call_pages(gateway, continued, alone)
    assert f'href="https://jaeger.example/trace/{TRACE_ID}" id="trace"' in continued_page
    assert 'id="trace"' not in alone_page  # no link to a trace that does not exist


def test_the_template_takes_the_request_id_and_the_trace_id() -> None:
    traced = AuditRecord("req-1", 0.0, trace_id=TRACE_ID)
    untraced = AuditRecord("req-2", 0.0)
    search = "https://jaeger.example/search?tags=%7B%22llm_gateway.request_id%22%3A%22{request_id}%22%7D"
    assert trace_link(search, untraced) == search.replace("{request_id}", "req-2")
    assert trace_link("https://t.example/{trace_id}?r={request_id}", traced) == f"https://t.example/{TRACE_ID}?r=req-1"
    assert trace_link("https://t.example/{trace_id}", untraced) is None


async def test_the_live_figures_are_every_processs_and_a_silent_one_is_left_out(start_gateway: StartGateway) -> None:
    """Another process of the gateway (a worker or instance on the same database) publishes its snapshot; the page
    served by this one sums both, and names the one not heard from lately without counting it."""
    gateway, channel = await start_gateway(CONFIG, http=True)
    await Admin.on(channel).team("alpha")
    others = SqlLiveStore(gateway.engine)
    now = time.time()
    purged_elsewhere = now + 600.0  # later than this process's own purge at start
    await others.put(
        ProcessLive(
            "elsewhere/1/a",
            now,
            in_flight=3,
            queued={"smart": 2},
            breakers=[{"target": "sim/fast", "state": "open", "rested_s": 0.0}],
            drift=[
                {"model": "fast", "provider": "sim", "metric": "status", "since": now - 120, "detail": "more errors"}
            ],
        ),
        now - FORGET_S,
    )
    await others.put(ProcessLive("elsewhere/2/b", now - 30, in_flight=40, last_purge_at=purged_elsewhere), 0.0)
    browser = Browser(gateway)
    try:
        await browser.sign_in(TEST_KEY)
        live = (await overview(browser))["live"]
        assert (live["processes"], live["in_flight"], live["queued"]) == (2, 3, {"smart": 2})
        [stale] = live["stale"]
        assert stale["process"] == "elsewhere/2/b"
        assert stale["age_s"] >= 30
        assert live["breakers"] == [{"target": "sim/fast", "state": "open", "rested_s": 0.0, "processes": 1}]
        assert [(f["model"], f["metric"]) for f in live["drift"]] == [("fast", "status")]
        assert live["last_purge"] == when(purged_elsewhere)
        _, text = await browser.get("/report.json?team=alpha&since=1d")
        assert orjson.loads(text)["last_purge_at"] == purged_elsewhere
    finally:
        await browser.close()
    assert gateway.live is not None
    await gateway.live.close()  # a process that stops takes its snapshot away
    assert {s.process for s in await others.all()} == {"elsewhere/1/a", "elsewhere/2/b"}


async def test_the_fresh_processes_are_summed_and_one_silent_for_five_seconds_is_left_out(
    start_gateway: StartGateway,
) -> None:
    """README: the page "sums the fresh ones, and names a process not heard from for 5 s without counting it" (1 s
    and 6 s old here, written after signing in, so a loaded machine has 4 s to read the page)."""
    gateway, _ = await start_gateway(CONFIG, http=True)
    others = SqlLiveStore(gateway.engine)
    browser = Browser(gateway)
    try:
        await browser.sign_in(TEST_KEY)
        now = time.time()
        await others.put(ProcessLive("elsewhere/1/recent", now - 1.0, in_flight=3, queued={"smart": 2}), 0.0)
        await others.put(ProcessLive("elsewhere/2/recent", now, in_flight=4, queued={"smart": 1, "cheap": 5}), 0.0)
        await others.put(ProcessLive("elsewhere/3/silent", now - 6.0, in_flight=40, queued={"smart": 9}), 0.0)
        live = (await overview(browser))["live"]
    finally:
        await browser.close()
    assert (live["processes"], live["in_flight"], live["queued"]) == (3, 7, {"cheap": 5, "smart": 3})
    assert [s["process"] for s in live["stale"]] == ["elsewhere/3/silent"]


async def test_each_process_renews_its_snapshot_about_once_a_second(start_gateway: StartGateway) -> None:
    gateway, _ = await start_gateway(CONFIG)
    store = SqlLiveStore(gateway.engine)
    seen: set[float] = set()
    deadline = time.monotonic() + 10.0  # generous for a loaded machine; a renewal once a minute would not make it
    while len(seen) < 3 and time.monotonic() < deadline:
        seen |= {s.at for s in await store.all()}
        await asyncio.sleep(0.2)
    assert len(seen) >= 3
