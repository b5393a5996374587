"""`gateway serve --workers 2`: both workers run a batch poller on one SQLite database; every batch is created at the
provider once, and every item billed once, whichever worker took the submission and whichever polled. The simulated
provider's batches too, which every worker finds in the state folder."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import orjson
from llmgateway.v1 import admin_pb2 as apb
from llmgateway.v1 import admin_pb2_grpc, batches_pb2_grpc
from llmgateway.v1 import batches_pb2 as bpb

from tests.batches.harness import requests
from tests.fakes.batch_apis import FakeOpenAIBatches
from tests.server.process import Server, clean_environment

KEY = "gw-batch-workers-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
BATCHES = 6
ITEMS = 3
S = bpb.BatchStatus
ENDED = {S.BATCH_STATUS_COMPLETED, S.BATCH_STATUS_EXPIRED, S.BATCH_STATUS_CANCELLED, S.BATCH_STATUS_FAILED}


async def batches_on_two_workers(
    tmp_path: Path, config: str, environment: dict[str, str], model: str
) -> tuple[list[str], list[bpb.Batch], list[apb.AuditRecord]]:
    """BATCHES batches of ITEMS items submitted to `gateway serve --workers 2`, each on a connection of its own (so
    either worker may take it), followed until all have ended or a minute passed: their ids, last views and the
    audit records of their items."""
    path = tmp_path / "gateway.yaml"
    path.write_text(config)
    environment = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY, **environment}
    options = (("grpc.use_local_subchannel_pool", 1),)
    server = await asyncio.to_thread(
        Server, tmp_path / "state", environment, "--config", str(path), "--workers", "2", ready="2 workers serving"
    )
    try:
        ids = []
        for _ in range(BATCHES):
            async with grpc.aio.insecure_channel(server.address, options=options) as channel:
                stub = batches_pb2_grpc.BatchesStub(channel)
                ids.append((await stub.SubmitBatch(requests(model, ITEMS), metadata=AUTH, timeout=10)).id)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = batches_pb2_grpc.BatchesStub(channel)
            deadline = time.monotonic() + 60
            while True:
                views = [await stub.GetBatch(bpb.GetBatchRequest(batch_id=i), metadata=AUTH, timeout=10) for i in ids]
                if all(v.status in ENDED for v in views) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            admin = admin_pb2_grpc.AdminStub(channel)
            records = (await admin.QueryAudit(apb.QueryAuditRequest(limit=1000), metadata=AUTH, timeout=10)).records
        return ids, views, [r for r in records if r.batch_id]
    finally:
        await asyncio.to_thread(server.stop)


async def test_two_workers_create_each_batch_once_and_bill_each_item_once(tmp_path: Path) -> None:
    fake = await FakeOpenAIBatches().start()
    provider = fake.provider_config("batchp").model_dump(mode="json", exclude_none=True)
    config = f"""
providers:
  - {orjson.dumps(provider).decode()}
models:
  - {{name: batchy, provider: batchp, upstream_model: {fake.default_model}, input_cost_per_mtok: 2.0}}
batches: {{poll_interval_s: 0.2}}
"""
    try:
        ids, views, billed = await batches_on_two_workers(tmp_path, config, {fake.key_env: fake.api_key}, "batchy")
    finally:
        await fake.close()
    assert [v.status for v in views] == [bpb.BATCH_STATUS_COMPLETED] * BATCHES
    assert fake.created == BATCHES
    assert len(billed) == BATCHES * ITEMS
    assert {r.batch_id for r in billed} == set(ids)


async def test_two_workers_complete_every_simulated_batch_whichever_polls_it(tmp_path: Path) -> None:
    config = """
providers:
  - {name: sim, type: simulated, simulation: {batch_delay_s: 0.5}}
models:
  - {name: sim-batch, provider: sim, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, tokenizer: o200k_base}
batches: {poll_interval_s: 0.2}
"""
    ids, views, billed = await batches_on_two_workers(tmp_path, config, {}, "sim-batch")
    assert [(v.status, v.error) for v in views] == [(bpb.BATCH_STATUS_COMPLETED, "")] * BATCHES
    assert len(billed) == BATCHES * ITEMS
    assert {r.batch_id for r in billed} == set(ids)
