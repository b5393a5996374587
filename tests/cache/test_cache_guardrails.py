"""Guardrails around the cache: the input policies run before the lookup (an entry is keyed by the redacted request
and never holds what they took out; a blocked request never reaches the cache) and the output policies run again on
every hit, with each caller's own placeholders restored."""

from __future__ import annotations

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, chat_request
from tests.fakes import FakeOpenAI
from tests.fakes.fixtures import FakeProviders
from tests.server.fixtures import AUTH, StartGateway


def config(fake: FakeOpenAI) -> str:
    return f"""
providers:
  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}
models:
  - name: gpt
    provider: openai
    upstream_model: gpt-4o
    cache: {{exact: true}}
guardrails:
  input:
    pii: {{default: redact, CREDIT_CARD: block, restore_in_output: true}}
  output:
    pii: {{default: redact}}
"""


@pytest.fixture
async def running(start_gateway: StartGateway, fake_providers: FakeProviders) -> tuple[Gateway, Admin, FakeOpenAI]:
    fake: FakeOpenAI = await fake_providers.start("openai")
    gateway, channel = await start_gateway(config(fake))
    return gateway, Admin.on(channel), fake


async def test_redacted_requests_share_an_entry_and_each_caller_gets_its_own_values_back(
    running: tuple[Gateway, Admin, FakeOpenAI],
) -> None:
    _, admin, fake = running
    fake.reply("I will write to <EMAIL_1> today. Ask ops@corp.example if it bounces.")
    alice = await admin.gateway.Chat(chat_request("gpt", "Email alice@example.com the report"), metadata=AUTH)
    bob = await admin.gateway.Chat(chat_request("gpt", "Email bob@example.org the report"), metadata=AUTH)
    assert len(fake.requests) == 1
    assert not alice.cache.hit
    assert bob.cache.hit
    assert "alice@example.com" in alice.message.content
    assert "bob@example.org" in bob.message.content
    assert "alice" not in bob.message.content
    assert "ops@corp.example" not in bob.message.content  # the output policy ran on the hit
    stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
    assert stats.entries == 1


async def test_a_blocked_request_never_reaches_the_cache(running: tuple[Gateway, Admin, FakeOpenAI]) -> None:
    _, admin, fake = running
    request = chat_request("gpt", "Charge 4111 1111 1111 1111 for the order")
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as blocked:
            await admin.gateway.Chat(request, metadata=AUTH)
        assert blocked.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)
    assert fake.requests == []
    stats = await admin.admin.GetCacheStats(apb.GetCacheStatsRequest(), metadata=AUTH)
    assert (stats.entries, stats.misses, stats.exact_hits) == (0, 0, 0)
