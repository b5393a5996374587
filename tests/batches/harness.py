"""A gateway with the Batches service on a fake provider batch API, for the tests of tests/batches: restarts keep
its database, and the tests drive the poller's rounds themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from llmgateway.v1 import batches_pb2 as bpb
from llmgateway.v1 import batches_pb2_grpc
from llmgateway.v1 import gateway_pb2 as pb

from gateway.config.loader import parse_config
from gateway.records.audit import AuditFilter
from gateway.server.app import Gateway, build_gateway
from tests.admin.helpers import bearer
from tests.fakes.batch_apis import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    FakeAnthropicBatches,
    FakeBatchApi,
    FakeGeminiBatches,
    FakeOpenAIBatches,
)
from tests.server.fixtures import AUTH, TEST_KEY

INPUT, OUTPUT = 2.0, 8.0
"""The model's interactive prices; its batch prices are left unset, so half of these apply."""
ITEM_COST = (PROMPT_TOKENS * INPUT / 2 + COMPLETION_TOKENS * OUTPUT / 2) / 1e6
S = bpb.BatchStatus

FAKES: dict[str, Callable[[], FakeBatchApi]] = {
    "openai": FakeOpenAIBatches,
    "azure_openai": lambda: FakeOpenAIBatches(azure=True),
    "anthropic": FakeAnthropicBatches,
    "gemini": FakeGeminiBatches,
}


def config(
    fake: FakeBatchApi, extra: str = "", fallback: str = "none", second: FakeBatchApi | None = None, lease: str = "120"
) -> str:
    """`second`: another provider's batch API, serving model `batchy2`, which the route `two-batch` tries after
    `batchy`."""
    provider = fake.provider_config("batchp").model_dump(mode="json", exclude_none=True)
    more_providers = more_models = ""
    if second is not None:
        other = second.provider_config("batchp2").model_dump(mode="json", exclude_none=True)
        more_providers = f"  - {orjson.dumps(other).decode()}\n"
        more_models = f"""  - name: batchy2
    provider: batchp2
    upstream_model: {second.default_model}
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
"""
    return f"""
providers:
  - {orjson.dumps(provider).decode()}
{more_providers}  - {{name: sim, type: simulated}}
models:
{more_models}
  - name: batchy
    provider: batchp
    upstream_model: {fake.default_model}
    input_cost_per_mtok: {INPUT}
    output_cost_per_mtok: {OUTPUT}
    max_output_tokens: 100
    tokenizer: o200k_base
  - name: fast
    provider: sim
    input_cost_per_mtok: 1.0
    output_cost_per_mtok: 2.0
routes:
  - name: with-fallback
    strategy: fallback
    targets: [{{model: batchy}}, {{model: fast}}]
  - name: two-batch
    strategy: fallback
    targets: [{{model: batchy}}, {{model: {"batchy2" if second is not None else "fast"}}}]
batches:
  poll_interval_s: 3600
  lease_s: {lease}
  fallback: {fallback}
{extra}
"""


class Harness:
    """A gateway on a state folder that outlives it (restarts keep the database), its Batches stub and the fake."""

    def __init__(self, tmp_path: Path, fake: FakeBatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.fake = fake
        monkeypatch.setenv("GATEWAY_BOOTSTRAP_KEY", TEST_KEY)
        monkeypatch.setenv(fake.key_env, fake.api_key)
        self.gateway: Gateway | None = None
        self.channel: grpc.aio.Channel | None = None

    async def start(self, *, http: bool = False, second: FakeBatchApi | None = None, **options: str) -> Harness:
        """`http`: serve the OpenAI-compatible front door too (`gateway.http.port`)."""
        self.gateway = await build_gateway(
            parse_config(config(self.fake, second=second, **options)),
            address="127.0.0.1:0",
            state_dir=self.tmp_path,
            metrics_address="",
            http_address="127.0.0.1:0" if http else "",
        )
        await self.gateway.server.start()
        assert self.gateway.batches is not None
        await self.gateway.batches.poller.close()  # the test drives the rounds (`rounds`)
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.gateway.port}")
        return self

    async def stop(self) -> None:
        if self.channel is not None:
            await self.channel.close()
        if self.gateway is not None:
            await self.gateway.stop(0)
        self.gateway = self.channel = None

    @property
    def stub(self) -> batches_pb2_grpc.BatchesStub:
        assert self.channel is not None
        return batches_pb2_grpc.BatchesStub(self.channel)

    async def rounds(self, count: int) -> None:
        assert self.gateway is not None
        assert self.gateway.batches is not None
        for _ in range(count):
            await self.gateway.batches.poller.run_once()

    async def submit(self, model: str = "batchy", count: int = 3, key: str = TEST_KEY, **item: Any) -> bpb.Batch:
        batch: bpb.Batch = await self.stub.SubmitBatch(requests(model, count, **item), metadata=bearer(key))
        return batch

    async def get(self, batch_id: str) -> bpb.Batch:
        batch: bpb.Batch = await self.stub.GetBatch(bpb.GetBatchRequest(batch_id=batch_id), metadata=AUTH)
        return batch

    async def results(self, batch_id: str, *, follow: bool = False) -> dict[str, bpb.BatchResult]:
        request = bpb.BatchResultsRequest(batch_id=batch_id, follow=follow)
        return {r.custom_id: r async for r in self.stub.BatchResults(request, metadata=AUTH)}

    async def audit(self, batch_id: str) -> list[Any]:
        assert self.gateway is not None
        await self.gateway.audit.flush()
        records = await self.gateway.ledger.query_audit(AuditFilter(limit=1000))
        return [r for r in records if r.batch_id == batch_id]


async def requests(batch_model: str, count: int, **item: Any) -> AsyncIterator[bpb.SubmitBatchRequest]:
    """A header for `batch_model` and `count` items; `item`: more ChatRequest fields of the items sent as such."""
    yield bpb.SubmitBatchRequest(header=bpb.BatchHeader(model=batch_model, metadata={"job": "nightly"}))
    for i in range(count):
        if i == 1:  # one item as an OpenAI batch line's body, the others as ChatRequests
            body = {"model": batch_model, "messages": [{"role": "user", "content": f"Question {i}"}], "max_tokens": 20}
            yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id=f"q-{i}", openai_body=orjson.dumps(body)))
        else:
            chat = pb.ChatRequest(messages=[pb.Message(role="user", content=f"Question {i}")], max_tokens=20, **item)
            yield bpb.SubmitBatchRequest(item=bpb.BatchItem(custom_id=f"q-{i}", chat=chat))
