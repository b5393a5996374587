"""The README's Batches section, promise by promise, where the other batch tests leave one unguarded: the config
reference's defaults, submission under the key's model list, residency and `max_items`, a route's first target with
a batch API, set batch prices, billing in the period the answer arrives, `batches.enabled: false`, and the CLI's
`submit` (prints the id), `status` (cost so far) and `results --follow`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import openai as openai_sdk
import orjson
import pytest
from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import batches_pb2_grpc
from llmgateway.v1 import gateway_pb2 as pb

import tests.batches.harness as harness_module
from gateway.cli.main import main
from gateway.config.loader import parse_config
from gateway.records.audit import GroupBy, UsageFilter
from gateway.server.app import build_gateway
from tests.admin.helpers import Admin, reason_of
from tests.batches.harness import ITEM_COST, Harness, S, requests
from tests.batches.test_batches_http import client, input_file
from tests.fakes.batch_apis import COMPLETION_TOKENS, PROMPT_TOKENS
from tests.server.fixtures import AUTH, TEST_KEY


def edit_config(monkeypatch: pytest.MonkeyPatch, edit: Callable[[str], str]) -> None:
    """The harness's config with `edit` applied, for one test."""
    original = harness_module.config
    monkeypatch.setattr(harness_module, "config", lambda *args, **kwargs: edit(original(*args, **kwargs)))


async def refusal(harness: Harness, model: str = "batchy", key: str = TEST_KEY) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await harness.submit(model=model, key=key)
    assert harness.fake.created == 0
    return refused.value


def test_the_config_references_batch_defaults() -> None:
    """README config reference: `batches.enabled`, `.poll_interval_s`, `.lease_s`: on, 30, 120; `.max_items`,
    `.completion_window`, `.fallback`: 50,000, `24h`, `individual`."""
    config = parse_config(
        "providers:\n  - {name: openai, type: openai}\n"
        "models:\n  - {name: m, provider: openai, input_cost_per_mtok: 0.15, output_cost_per_mtok: 0.6}\n"
    )
    batches = config.batches
    assert (batches.enabled, batches.poll_interval_s, batches.lease_s) == (True, 30, 120)
    assert (batches.max_items, batches.completion_window, batches.fallback) == (50_000, "24h", "individual")


async def test_the_keys_model_list_applies_on_submission(openai: Harness) -> None:
    await openai.start()
    assert openai.channel is not None
    secret, _ = await Admin.on(openai.channel).key(team="narrow", models=["fast"])
    refused = await refusal(openai, key=secret)
    assert refused.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(refused) == "MODEL_NOT_ALLOWED"


async def test_residency_applies_on_submission(openai: Harness) -> None:
    """The fake provider declares no region, so a rule naming one leaves the batch nowhere to go."""
    await openai.start(extra="residency: {regions: [eu-west-1]}")
    refused = await refusal(openai)
    assert refused.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused) == "RESIDENCY_NO_TARGET"


async def test_max_items_refuses_a_larger_batch_on_both_doors(openai: Harness) -> None:
    """gRPC stops reading the stream at the limit; the HTTP door's file is checked by the service."""
    await openai.start(http=True, extra="  max_items: 2")
    refused = await refusal(openai)
    assert refused.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused) == "BATCH_TOO_LARGE"
    assert "max_items (2)" in (refused.details() or "")
    async with client(openai) as sdk:
        uploaded = await sdk.files.create(file=("requests.jsonl", input_file("batchy", 3)), purpose="batch")
        with pytest.raises(openai_sdk.BadRequestError) as too_large:
            await sdk.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
    assert "max_items (2)" in too_large.value.message
    assert openai.fake.created == 0


async def test_a_routes_batch_goes_to_its_first_target_with_a_batch_api(
    openai: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit_config(
        monkeypatch,
        lambda text: text.replace(
            "routes:\n",
            "routes:\n  - {name: sim-first, strategy: fallback, targets: [{model: fast}, {model: batchy}]}\n",
        ),
    )
    await openai.start()
    submitted = await openai.submit(model="sim-first")
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    assert (batch.status, batch.provider, batch.served_model) == (S.BATCH_STATUS_COMPLETED, "batchp", "batchy")
    assert openai.fake.created == 1


async def test_set_batch_prices_replace_the_half_price(openai: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_config(
        monkeypatch,
        lambda text: text.replace(
            "    max_output_tokens: 100\n",
            "    max_output_tokens: 100\n    batch_input_cost_per_mtok: 0.3\n    batch_output_cost_per_mtok: 0.7\n",
        ),
    )
    await openai.start()
    submitted = await openai.submit()
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    item_cost = (PROMPT_TOKENS * 0.3 + COMPLETION_TOKENS * 0.7) / 1e6
    assert item_cost != pytest.approx(ITEM_COST)
    assert batch.cost_usd == pytest.approx(3 * item_cost)


async def test_each_item_is_billed_when_its_answer_arrives(openai: Harness) -> None:
    """ "Each item is billed once, at the batch prices, in the period in which its answer arrives": the ledger's rows
    and audit records carry the answer's time, not the submission's."""
    await openai.start()
    submitted = await openai.submit()
    await asyncio.sleep(0.05)
    answered_after = time.time()
    await openai.rounds(5)
    assert (await openai.get(submitted.id)).status == S.BATCH_STATUS_COMPLETED
    records = await openai.audit(submitted.id)
    assert len(records) == 3
    assert all(record.at >= answered_after for record in records)
    assert openai.gateway is not None
    usage = await openai.gateway.ledger.usage(GroupBy.MODEL, UsageFilter(since=answered_after, until=time.time() + 1))
    assert [(row.group, row.requests) for row in usage] == [("batchy", 3)]
    assert usage[0].cost_usd == pytest.approx(3 * ITEM_COST)


async def test_batches_enabled_false_serves_no_batches_service(
    openai: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", TEST_KEY)
    gateway = await build_gateway(
        parse_config(harness_module.config(openai.fake, extra="  enabled: false")),
        address="127.0.0.1:0",
        state_dir=tmp_path,
        metrics_address="",
        http_address="",
    )
    await gateway.server.start()
    try:
        assert gateway.batches is None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await batches_pb2_grpc.BatchesStub(channel).SubmitBatch(requests("batchy", 1), metadata=AUTH)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await gateway.stop(0)


async def test_the_cli_prints_the_id_the_cost_so_far_and_follows_results(
    openai: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: `submit` "prints the batch id", `status` "status, counts, cost so far", `results --follow` "one JSON
    result a line, as they arrive" until the batch ends."""
    monkeypatch.setenv("GATEWAY_API_KEY", TEST_KEY)
    await openai.start()
    assert openai.gateway is not None
    address = ["--address", f"127.0.0.1:{openai.gateway.port}"]
    line = {"method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Hi"}]}}
    path = tmp_path / "requests.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"custom_id": f"t-{i}", **line}) for i in range(3)))
    assert await asyncio.to_thread(main, ["batch", "submit", str(path), "-m", "batchy", *address]) == 0
    batch_id = capsys.readouterr().out.split()[0]
    assert (await openai.get(batch_id)).counts.total == 3
    following = asyncio.ensure_future(asyncio.to_thread(main, ["batch", "results", batch_id, "--follow", *address]))
    await asyncio.sleep(0.5)
    assert not following.done()  # nothing answered yet: it waits
    await openai.rounds(5)
    assert await asyncio.wait_for(following, 30) == 0
    results = [orjson.loads(text) for text in capsys.readouterr().out.splitlines()]
    assert sorted(r["custom_id"] for r in results) == ["t-0", "t-1", "t-2"]
    assert await asyncio.to_thread(main, ["batch", "status", batch_id, *address]) == 0
    status = capsys.readouterr().out
    assert "completed" in status
    assert f"cost so far: ${3 * ITEM_COST:.6f}" in status


async def test_a_window_other_than_24h_is_refused(openai: Harness) -> None:
    """README config reference: `batches.completion_window` `24h`, the one window the providers' batch APIs offer."""
    await openai.start()

    async def in_48h() -> AsyncIterator[bpb.SubmitBatchRequest]:
        yield bpb.SubmitBatchRequest(header=bpb.BatchHeader(model="batchy", completion_window="48h"))
        chat = pb.ChatRequest(messages=[pb.Message(role="user", content="hi")])
        yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id="a", chat=chat))

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await openai.stub.SubmitBatch(in_48h(), metadata=AUTH)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "BAD_COMPLETION_WINDOW"


async def test_an_item_sent_again_on_its_own_bills_at_interactive_prices(openai: Harness) -> None:
    """`fallback: individual`: "sent again as ordinary calls, through the route's fallbacks, at interactive prices";
    the route's next target here is `fast` (1.0 and 2.0 $/Mtok), the others keep the batch price."""
    await openai.start(fallback="individual")
    openai.fake.fail_items = {0: 500}
    submitted = await openai.submit(model="with-fallback")
    await openai.rounds(5)
    results = await openai.results(submitted.id)
    usage = results["q-0"].answer.usage
    assert (results["q-0"].answer.model, usage.completion_tokens > 0) == ("fast", True)
    assert usage.cost_usd == pytest.approx((usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6)
    assert results["q-1"].answer.usage.cost_usd == pytest.approx(ITEM_COST)
    batch = await openai.get(submitted.id)
    assert batch.cost_usd == pytest.approx(usage.cost_usd + 2 * ITEM_COST)


async def test_a_deployment_with_a_batch_api_takes_the_batch_at_its_own_batch_prices(
    openai: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Config reference: batch prices "deployments may set their own". The model's own provider has no batch API, its
    second deployment has: the batch goes there and bills at that deployment's prices."""
    upstream = openai.fake.default_model
    deployment = (
        f"    deployments: [{{provider: batchp, upstream_model: {upstream}, batch_input_cost_per_mtok: 0.3,"
        " batch_output_cost_per_mtok: 0.7}]\n"
    )
    edit_config(
        monkeypatch,
        lambda text: text.replace(
            "  - name: batchy\n    provider: batchp\n", "  - name: batchy\n    provider: sim\n"
        ).replace("    max_output_tokens: 100\n", "    max_output_tokens: 100\n" + deployment),
    )
    await openai.start()
    submitted = await openai.submit()
    await openai.rounds(5)
    batch = await openai.get(submitted.id)
    assert (batch.status, batch.provider) == (S.BATCH_STATUS_COMPLETED, "batchp")
    assert batch.cost_usd == pytest.approx(3 * (PROMPT_TOKENS * 0.3 + COMPLETION_TOKENS * 0.7) / 1e6)
