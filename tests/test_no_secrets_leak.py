"""No secret (provider key, gateway keys old and new) appears in any log line, audit record, export or error,
whatever goes wrong: the server runs as a process at DEBUG level, and everything it wrote is grepped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from llmgateway.v1 import admin_pb2 as apb

from tests.admin.helpers import Admin, bearer, chat_request
from tests.fakes.fixtures import FakeProviders
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
