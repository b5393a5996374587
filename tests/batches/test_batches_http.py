"""OpenAI's Files and Batch APIs on the HTTP front door, through the real `openai` SDK: upload, create, follow,
read the output and error files, cancel, list, and the refusals as OpenAI error bodies."""

from __future__ import annotations

import openai as openai_sdk
import orjson
import pytest

from tests.batches.harness import ITEM_COST, Harness
from tests.fakes.batch_apis import COMPLETION_TOKENS, PROMPT_TOKENS
from tests.server.fixtures import TEST_KEY


def client(harness: Harness, key: str = TEST_KEY) -> openai_sdk.AsyncOpenAI:
    """The SDK on the harness's front door; close it (`async with`)."""
    assert harness.gateway is not None
    assert harness.gateway.http is not None
    url = f"http://127.0.0.1:{harness.gateway.http.port}/v1"
    return openai_sdk.AsyncOpenAI(base_url=url, api_key=key, max_retries=0)


def input_file(model: str, count: int) -> bytes:
    lines = [
        {
            "custom_id": f"row-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Row {i}"}], "max_tokens": 30},
        }
        for i in range(count)
    ]
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


async def test_the_openai_sdk_runs_a_batch_through_the_gateway(openai: Harness) -> None:
    await openai.start(http=True)
    openai.fake.fail_items = {1: 500}
    async with client(openai) as sdk:
        await run_a_batch(openai, sdk)


async def run_a_batch(openai: Harness, sdk: openai_sdk.AsyncOpenAI) -> None:
    uploaded = await sdk.files.create(file=("requests.jsonl", input_file("batchy", 3)), purpose="batch")
    assert uploaded.purpose == "batch"
    assert (await sdk.files.content(uploaded.id)).content == input_file("batchy", 3)
    batch = await sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "nightly"},
    )
    assert batch.status == "queued"
    assert batch.input_file_id == uploaded.id
    assert batch.request_counts is not None
    assert batch.request_counts.total == 3
    await openai.rounds(5)
    done = await sdk.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.completed_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.output_file_id is not None
    assert done.error_file_id is not None
    output = [orjson.loads(line) for line in (await sdk.files.content(done.output_file_id)).text.splitlines()]
    assert sorted(line["custom_id"] for line in output) == ["row-0", "row-2"]
    body = output[0]["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert body["usage"]["completion_tokens"] == COMPLETION_TOKENS
    errors = [orjson.loads(line) for line in (await sdk.files.content(done.error_file_id)).text.splitlines()]
    assert [line["custom_id"] for line in errors] == ["row-1"]
    assert errors[0]["error"]["code"]
    listed = await sdk.batches.list()
    assert [b.id for b in listed.data] == [batch.id]
    records = await openai.audit(batch.id)
    assert sum(r.cost_usd for r in records) == pytest.approx(2 * ITEM_COST)


async def test_cancel_and_refusals_over_http(openai: Harness) -> None:
    await openai.start(http=True)
    async with client(openai) as sdk, client(openai, "wrong-key") as stranger:
        await cancel_and_refuse(openai, sdk, stranger)


async def cancel_and_refuse(openai: Harness, sdk: openai_sdk.AsyncOpenAI, stranger: openai_sdk.AsyncOpenAI) -> None:
    uploaded = await sdk.files.create(file=("requests.jsonl", input_file("batchy", 2)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelling = await sdk.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    await openai.rounds(1)
    assert (await sdk.batches.retrieve(batch.id)).status == "cancelled"
    with pytest.raises(openai_sdk.BadRequestError) as bad_purpose:
        await sdk.files.create(file=("x.jsonl", input_file("batchy", 1)), purpose="fine-tune")
    assert bad_purpose.value.code == "unsupported_purpose"
    with pytest.raises(openai_sdk.BadRequestError) as bad_line:
        await sdk.files.create(file=("x.jsonl", b'{"custom_id": "a"}\n'), purpose="batch")
    assert bad_line.value.code == "bad_input_line"
    with pytest.raises(openai_sdk.BadRequestError) as endpoint:
        await sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    assert endpoint.value.code == "unsupported_endpoint"
    with pytest.raises(openai_sdk.NotFoundError):
        await sdk.batches.retrieve("batch_nope")
    with pytest.raises(openai_sdk.NotFoundError):
        await sdk.files.content("file-nope")
    with pytest.raises(openai_sdk.AuthenticationError):
        await stranger.batches.list()
