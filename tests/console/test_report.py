"""The compliance report: as a page, as JSON and CSV, as a PDF read back as text, and from the CLI."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import grpc
import orjson
import pytest
from pypdf import PdfReader
from sqlalchemy import delete

from gateway.cli.main import main
from gateway.store.tables import audit
from tests.admin.helpers import Admin, bearer, chat_request
from tests.console.helpers import CONFIG, Browser, team
from tests.server.fixtures import TEST_KEY, StartGateway


async def test_the_report_counts_what_the_team_did_in_every_format(
    start_gateway: StartGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    alpha = await team(admin, "alpha")  # one call with an e-mail address, redacted
    with pytest.raises(grpc.aio.AioRpcError, match="CREDIT_CARD"):  # a card number is blocked
        await admin.gateway.Chat(chat_request(text="card 4111 1111 1111 1111"), metadata=bearer(alpha.member_key))
    beta = await team(admin, "beta")
    browser = Browser(gateway)
    try:
        await browser.sign_in(alpha.admin_key)
        status, page = await browser.get("/report?since=1d")
        assert status == 200
        assert "EMAIL_ADDRESS" in page
        assert "CREDIT_CARD" in page
        status, text = await browser.get("/report.json?since=1d")
        report = orjson.loads(text)
        assert report["team"] == "alpha"
        assert report["calls"] == 2
        assert report["redactions"] == {"EMAIL_ADDRESS": 1}
        assert report["blocks"] == {"CREDIT_CARD": 1}
        assert report["destinations"] == [
            {"provider": "sim", "region": "eu", "classification": "confidential", "calls": 1, "allowed": True}
        ]
        assert {e["event"] for e in report["key_events"]} == {"created"}
        assert len(report["key_events"]) == 2
        assert (report["audit_writers"], report["audit_gaps"]) == (1, 0)
        _, csv_text = await browser.get("/report.csv?since=1d")
        assert "Redactions by entity type,EMAIL_ADDRESS,1" in csv_text
        async with browser.session.get(browser.base + "/report.pdf?since=1d") as response:
            assert response.headers["Content-Type"] == "application/pdf"
            pdf = await response.read()
    finally:
        await browser.close()
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Compliance report: team alpha" in text
    assert "EMAIL_ADDRESS" in text
    assert "CREDIT_CARD" in text
    assert "sim (eu), confidential" in text

    # A record lost between two others of its writer is a gap, whichever team it belonged to.
    await admin.gateway.Chat(chat_request(text="the last one"), metadata=bearer(beta.member_key))
    async with gateway.engine.begin() as conn:
        await conn.execute(delete(audit).where(audit.c.request_id == beta.call_id))
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", TEST_KEY)
    out = tmp_path / "report.pdf"
    address = f"127.0.0.1:{gateway.port}"
    argv = ["report", "compliance", "--team", "alpha", "--since", "1d", "--format", "pdf", "-o", str(out)]
    assert await asyncio.to_thread(main, [*argv, "--address", address]) == 0
    cli_text = "\n".join(page.extract_text() for page in PdfReader(out).pages)
    assert "Compliance report: team alpha" in cli_text
    assert "EMAIL_ADDRESS" in cli_text
    json_out = tmp_path / "report.json"
    argv = ["report", "compliance", "--team", "alpha", "--since", "1d", "--format", "json", "-o", str(json_out)]
    assert await asyncio.to_thread(main, [*argv, "--address", address]) == 0
    cli_report = orjson.loads(json_out.read_bytes())
    assert (cli_report["blocks"], cli_report["audit_gaps"]) == ({"CREDIT_CARD": 1}, 1)
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", alpha.admin_key)
    argv = ["report", "compliance", "--team", "beta", "--format", "json", "--address", address]
    assert await asyncio.to_thread(main, argv) == 1  # another team's report: PERMISSION_DENIED
