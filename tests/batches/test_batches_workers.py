"""`gateway serve --workers 2`: both workers run a batch poller on one SQLite database; every batch is created at the
provider once, and every item billed once, whichever worker took the submission and whichever polled."""

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


async def test_two_workers_create_each_batch_once_and_bill_each_item_once(tmp_path: Path) -> None:
    fake = await FakeOpenAIBatches().start()
    provider = fake.provider_config("batchp").model_dump(mode="json", exclude_none=True)
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"""
providers:
  - {orjson.dumps(provider).decode()}
models:
  - {{name: batchy, provider: batchp, upstream_model: {fake.default_model}, input_cost_per_mtok: 2.0}}
batches: {{poll_interval_s: 0.2}}
"""
    )
    environment = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY, fake.key_env: fake.api_key}
    # Connections spread over the workers: each submission may land on either.
    options = (("grpc.use_local_subchannel_pool", 1),)
    server = await asyncio.to_thread(
        Server, tmp_path / "state", environment, "--config", str(path), "--workers", "2", ready="2 workers serving"
    )
    try:
        ids = []
        for _ in range(BATCHES):
            async with grpc.aio.insecure_channel(server.address, options=options) as channel:
                stub = batches_pb2_grpc.BatchesStub(channel)
                ids.append((await stub.SubmitBatch(requests("batchy", ITEMS), metadata=AUTH, timeout=10)).id)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = batches_pb2_grpc.BatchesStub(channel)
            deadline = time.monotonic() + 60
            while True:
                statuses = [
                    (await stub.GetBatch(bpb.GetBatchRequest(batch_id=i), metadata=AUTH, timeout=10)).status
                    for i in ids
                ]
                if all(s == bpb.BATCH_STATUS_COMPLETED for s in statuses) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert statuses == [bpb.BATCH_STATUS_COMPLETED] * BATCHES
            assert fake.created == BATCHES
            admin = admin_pb2_grpc.AdminStub(channel)
            records = (await admin.QueryAudit(apb.QueryAuditRequest(limit=1000), metadata=AUTH, timeout=10)).records
        billed = [r for r in records if r.batch_id]
        assert len(billed) == BATCHES * ITEMS
        assert {r.batch_id for r in billed} == set(ids)
    finally:
        await asyncio.to_thread(server.stop)
        await fake.close()
