"""The simulated provider's batches are found by every gateway serving from the state folder that made them, as a real
provider's are: a `--workers` sibling polls or cancels a batch another worker made, and a gateway started later (a
restart) collects the answers of a batch made before it started. Each gateway has its own provider objects, as each
process has."""

from __future__ import annotations

import asyncio
import time

from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import batches_pb2_grpc

from gateway.server.app import Gateway
from tests.admin.helpers import bearer
from tests.batches.harness import requests
from tests.server.fixtures import AUTH, TEST_KEY, StartGateway

QUICK_S = 4.0  # the first gateway makes the batch well within this, even on a loaded machine
CONFIG = f"""
providers:
  - {{name: sim-quick, type: simulated, simulation: {{batch_delay_s: {QUICK_S}}}}}
  - {{name: sim-slow, type: simulated, simulation: {{batch_delay_s: 3600}}}}
models:
  - {{name: quick, provider: sim-quick, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, tokenizer: o200k_base}}
  - {{name: slow, provider: sim-slow, input_cost_per_mtok: 1.0, output_cost_per_mtok: 2.0, tokenizer: o200k_base}}
batches: {{poll_interval_s: 3600}}
"""
S = bpb.BatchStatus


async def started(start_gateway: StartGateway) -> tuple[Gateway, batches_pb2_grpc.BatchesStub]:
    """A gateway on the test's state folder whose poller rounds the test runs itself."""
    gateway, channel = await start_gateway(CONFIG)
    assert gateway.batches is not None
    await gateway.batches.poller.close()
    return gateway, batches_pb2_grpc.BatchesStub(channel)


async def round_of(gateway: Gateway) -> None:
    assert gateway.batches is not None
    await gateway.batches.poller.run_once()


async def status(stub: batches_pb2_grpc.BatchesStub, batch_id: str) -> bpb.Batch:
    batch: bpb.Batch = await stub.GetBatch(bpb.GetBatchRequest(batch_id=batch_id), metadata=AUTH)
    return batch


async def test_a_sibling_polls_and_cancels_a_batch_another_worker_made(start_gateway: StartGateway) -> None:
    one, one_stub = await started(start_gateway)
    two, two_stub = await started(start_gateway)
    submitted = await one_stub.SubmitBatch(requests("slow", 3), metadata=bearer(TEST_KEY))
    await round_of(one)
    assert (await status(one_stub, submitted.id)).status == S.BATCH_STATUS_IN_PROGRESS, "made at the provider"

    await round_of(two)
    batch = await status(two_stub, submitted.id)
    assert batch.status == S.BATCH_STATUS_IN_PROGRESS, batch.error
    await two_stub.CancelBatch(bpb.CancelBatchRequest(batch_id=submitted.id), metadata=AUTH)
    await round_of(two)
    await round_of(one)
    assert (await status(one_stub, submitted.id)).status == S.BATCH_STATUS_CANCELLED
    results = [r async for r in one_stub.BatchResults(bpb.BatchResultsRequest(batch_id=submitted.id), metadata=AUTH)]
    assert sorted(r.custom_id for r in results) == ["q-0", "q-1", "q-2"]
    assert {r.error.reason for r in results} == {"BATCH_CANCELLED"}


async def test_a_gateway_started_later_collects_the_answers_of_a_batch_made_before(
    start_gateway: StartGateway,
) -> None:
    before, before_stub = await started(start_gateway)
    submitted = await before_stub.SubmitBatch(requests("quick", 3), metadata=bearer(TEST_KEY))
    await round_of(before)
    made = time.time()  # the batch was made during the round: by now
    assert (await status(before_stub, submitted.id)).status == S.BATCH_STATUS_IN_PROGRESS

    after, after_stub = await started(start_gateway)
    await asyncio.sleep(max(0.0, made + QUICK_S - time.time()))
    await round_of(after)
    batch = await status(after_stub, submitted.id)
    assert batch.status == S.BATCH_STATUS_COMPLETED, batch.error
    assert batch.counts.succeeded == 3
    results = [r async for r in after_stub.BatchResults(bpb.BatchResultsRequest(batch_id=submitted.id), metadata=AUTH)]
    assert sorted(r.custom_id for r in results) == ["q-0", "q-1", "q-2"]
    assert all(r.answer.message.content.startswith("[simulated quick]") for r in results)
