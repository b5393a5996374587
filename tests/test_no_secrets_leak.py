"""No secret (provider key, AWS secret key and session token, gateway keys old and new) appears in any log line, trace,
audit record, export or error, whatever goes wrong: the server runs as a process at DEBUG level, and everything it
wrote is grepped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
from llmgateway.v1 import admin_pb2 as apb

from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes.fixtures import FakeProviders
from tests.fakes.otlp import FakeCollector
from tests.server.fixtures import TEST_KEY
from tests.server.process import Server, clean_environment

PROVIDER_KEY = "sk-proj-Zq8TfLw2Xc9Vb4Nm7Kp1Rs6Ty3Uo0Ie5"
ADMIN_KEY = TEST_KEY


def state_bytes(state_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in state_dir.glob("gateway.db*"))


async def test_no_secret_in_logs_audit_exports_or_errors(tmp_path: Path, fake_providers: FakeProviders) -> None:
    fake = await fake_providers.start("openai", api_key=PROVIDER_KEY)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"providers:\n  - {{name: openai, type: openai, base_url: '{fake.url}', api_key_env: {fake.key_env}}}\n"
        "models:\n  - {name: gpt, provider: openai, upstream_model: gpt-4o}\n"
        "teams:\n  - {name: red, bodies: full}\n"
    )
    env = {
        **clean_environment(),
        fake.key_env: PROVIDER_KEY,
        "GATEWAY_BOOTSTRAP_KEY": ADMIN_KEY,
        "GATEWAY_LOG_LEVEL": "DEBUG",
    }
    server = Server(tmp_path, env, "--config", str(config), "--log-level", "DEBUG")
    errors: list[str] = []
    secrets = [PROVIDER_KEY, ADMIN_KEY]
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin = Admin.on(channel)
            member, info = await admin.key(team="red")
            secrets.append(member)
            await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(member))
            async for _ in admin.gateway.ChatStream(chat_request("gpt"), metadata=bearer(member)):
                pass
            fake.fail(401, message=f"Incorrect API key provided: {PROVIDER_KEY}.")
            fake.fail(400, message=f"Invalid 'messages': the key {PROVIDER_KEY} was echoed back")
            fake.fail(500, body=f"upstream crashed while using {PROVIDER_KEY}".encode())
            attempts = [
                (chat_request("gpt"), bearer(member)),
                (chat_request("gpt"), bearer(member)),
                (chat_request("gpt"), bearer(member)),
                (chat_request("gpt"), bearer(member + "x")),
                (chat_request("gpt"), bearer(member[:-1])),
                (chat_request("gpt"), (("authorization", member),)),
            ]
            for request, metadata in attempts:
                try:
                    await admin.gateway.Chat(request, metadata=metadata)
                except grpc.aio.AioRpcError as err:
                    errors.append(f"{err.code()} {err.details()} {err.trailing_metadata()}")
            rotated = await admin.admin.RotateKey(apb.RotateKeyRequest(key_id=info.id), metadata=bearer(ADMIN_KEY))
            secrets.append(rotated.key)
            await admin.admin.RevokeKey(apb.RevokeKeyRequest(key_id=info.id), metadata=bearer(ADMIN_KEY))
            for key in (member, rotated.key):
                try:
                    await admin.gateway.Chat(chat_request("gpt"), metadata=bearer(key))
                except grpc.aio.AioRpcError as err:
                    errors.append(f"{err.code()} {err.details()} {err.trailing_metadata()}")
            # Every call's record written first (batched mode commits every 10 ms; a busy machine takes longer): the
            # export and the query below must see the same records.
            seen = -1
            while True:
                await asyncio.sleep(0.1)
                found = await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=1000), metadata=bearer(ADMIN_KEY))
                if len(found.records) == seen:
                    break
                seen = len(found.records)
            exported = b""
            async for chunk in admin.admin.ExportAudit(apb.ExportAuditRequest(), metadata=bearer(ADMIN_KEY)):
                exported += chunk.jsonl
            queried = await admin.admin.QueryAudit(apb.QueryAuditRequest(limit=1000), metadata=bearer(ADMIN_KEY))
    finally:
        out, err = server.stop()
    assert len(errors) == 8
    assert exported.count(b"\n") == len(queried.records) >= 10
    logs = out + err
    assert "DEBUG" in logs or "INFO" in logs
    places = {
        "logs": logs,
        "errors": "\n".join(errors),
        "export": exported.decode(),
        "audit": str(queried),
        "database": state_bytes(tmp_path).decode("utf-8", "replace"),
    }
    for secret in secrets:
        for name, text in places.items():
            assert secret not in text, f"a secret leaked into {name}"
            assert secret[8:24] not in text, f"part of a secret leaked into {name}"


AWS_SECRET_KEY = "wJ4lrXUtnFEMI/K7MDENG+bPxRfiCYz8Qm2Vn6Tk"
AWS_SESSION_TOKEN = (
    "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJGMEQCIFakeSessionTokenForTheLeakTest+Zq8TfLw2Xc9Vb4N=="
)


async def test_no_aws_secret_in_logs_traces_audit_or_errors(tmp_path: Path, fake_providers: FakeProviders) -> None:
    """A bedrock provider's secret key and session token, echoed back by the upstream in error bodies and exception
    frames, with botocore's own loggers at DEBUG: none of it reaches a log line, a span, an error or the database."""
    fake = await fake_providers.start("bedrock", secret_key=AWS_SECRET_KEY, session_token=AWS_SESSION_TOKEN)
    collector = FakeCollector()
    await collector.start()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        f"providers:\n  - {{name: aws, type: bedrock, region: us-east-1, base_url: '{fake.url}'}}\n"
        "models:\n  - {name: claude, provider: aws, upstream_model: 'us.anthropic.claude-3-5-haiku-20241022-v1:0'}\n"
        "teams:\n  - {name: red, bodies: full}\n"
        "observe: {tracing: {record_content: true}}\n"
    )
    env = {
        **{k: v for k, v in clean_environment().items() if not k.startswith("AWS_")},
        **{k: v for k, v in fake.environment().items() if v is not None},
        "GATEWAY_BOOTSTRAP_KEY": ADMIN_KEY,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.grpc_port}",
    }
    server = Server(tmp_path, env, "--config", str(config), "--log-level", "DEBUG")
    errors: list[str] = []
    echo = f"secret {AWS_SECRET_KEY} token {AWS_SESSION_TOKEN}"
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            admin = Admin.on(channel)
            member, _ = await admin.key(team="red")
            await admin.gateway.Chat(chat_request("claude"), metadata=bearer(member))
            async for _ in admin.gateway.ChatStream(chat_request("claude"), metadata=bearer(member)):
                pass
            fake.fail(403, message=f"User is not authorized: {echo}")
            fake.fail(400, message=f"Malformed input request: {echo}")
            fake.fail(500, body=f"crashed with {echo}".encode())
            fake.fail(429, in_stream=True, after_chunks=2, message=f"Too many requests: {echo}")
            for streaming in (False, False, False, True):
                try:
                    if streaming:
                        async for _ in admin.gateway.ChatStream(chat_request("claude"), metadata=bearer(member)):
                            pass
                    else:
                        await admin.gateway.Chat(chat_request("claude"), metadata=bearer(member))
                except grpc.aio.AioRpcError as err:
                    errors.append(f"{err.code()} {err.details()} {err.trailing_metadata()}")
            deadline = time.monotonic() + 15
            while len(collector.spans()) < 6 and time.monotonic() < deadline:  # noqa: ASYNC110 - a plain list
                await asyncio.sleep(0.1)  # spans are exported in batches
    finally:
        out, err = server.stop()
        await collector.stop()
    assert len(errors) == 4
    assert "[redacted]" in "\n".join(errors)
    assert len(collector.spans()) >= 6, "every call's spans were exported"
    places = {
        "logs": out + err,
        "errors": "\n".join(errors),
        "traces": str(collector.requests),
        "database": state_bytes(tmp_path).decode("utf-8", "replace"),
    }
    assert " DEBUG " in places["logs"], "the server logged at DEBUG (where botocore writes signed requests)"
    for secret in (AWS_SECRET_KEY, AWS_SESSION_TOKEN):
        for name, text in places.items():
            assert secret not in text, f"an AWS secret leaked into {name}"
            assert secret[8:24] not in text, f"part of an AWS secret leaked into {name}"
