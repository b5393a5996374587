"""Replay and Compare from a call's page: the stored request sent again under the signed-in key, the answers side by
side; a change like any other (CSRF), and only on the caller's own team's calls."""

from __future__ import annotations

import re

from tests.admin.helpers import Admin
from tests.console.helpers import CONFIG, Browser, team
from tests.server.fixtures import StartGateway


async def test_replay_and_compare_a_call_side_by_side(start_gateway: StartGateway) -> None:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    gamma = await team(admin, "gamma", body_policy="redacted")
    beta = await team(admin, "beta")
    browser = Browser(gateway)
    try:
        await browser.sign_in(gamma.admin_key)
        _, page = await browser.get(f"/calls/{gamma.call_id}")
        assert 'id="replay"' in page
        assert "write to &lt;EMAIL_1&gt;" in page
        csrf = await browser.csrf()
        status, _, html = await browser.post(f"/calls/{gamma.call_id}/replay", {"csrf": csrf, "target": "other"})
        assert status == 200
        assert "original: fast" in html
        assert "replay: other" in html
        assert re.search(r'id="similarity">\d\.\d\d<', html)
        assert html.count('<pre class="answer">') == 2
        status, _, html = await browser.post(f"/calls/{gamma.call_id}/compare", {"csrf": csrf, "targets": "fast,other"})
        assert status == 200
        assert html.count('<pre class="answer">') == 2
        status, _, _ = await browser.post(f"/calls/{gamma.call_id}/compare", {"targets": "fast"})
        assert status == 403  # no CSRF token
        _, calls = await browser.get("/calls?since=1h")
        assert calls.count("/console/calls/") == 4  # the call, its replay, and the two compared
        await browser.sign_in(beta.admin_key)
        csrf = await browser.csrf()
        assert (await browser.post(f"/calls/{gamma.call_id}/replay", {"csrf": csrf}))[0] == 403
        assert (await browser.post(f"/calls/{gamma.call_id}/compare", {"csrf": csrf, "targets": "fast"}))[0] == 404
    finally:
        await browser.close()
