"""The console's security over plain HTTP: sign-in, sessions, CSRF, team scoping (URL guessing included), and no
secret in any page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from gateway.server.app import Gateway
from tests.admin.helpers import Admin, bearer, chat_request
from tests.console.helpers import CONFIG, Browser, Team, team
from tests.server.fixtures import TEST_KEY, StartGateway


@dataclass
class World:
    gateway: Gateway
    admin: Admin
    alpha: Team
    beta: Team


@pytest.fixture
async def world(start_gateway: StartGateway) -> World:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    return World(gateway, admin, await team(admin, "alpha"), await team(admin, "beta"))


@pytest.fixture
async def browser(world: World) -> AsyncIterator[Browser]:
    client = Browser(world.gateway)
    yield client
    await client.close()


@pytest.mark.parametrize("path", ["/", "/calls", "/keys", "/api/overview", "/report.pdf?team=alpha", "/calls/x"])
async def test_without_a_session_every_page_redirects_to_sign_in(browser: Browser, path: str) -> None:
    status, _ = await browser.get(path)
    assert status == 303
    async with browser.session.get(browser.base + path, allow_redirects=False) as response:
        assert response.headers["Location"] == "/console/login"


async def test_a_forged_or_tampered_cookie_is_no_session(browser: Browser, world: World) -> None:
    signed_in = await browser.sign_in(world.alpha.admin_key)
    cookie = signed_in.cookies["gateway_console"].value
    payload, _, signature = cookie.partition(".")
    for forged in (f"{payload}.{'0' * len(signature)}", f"{payload[:-2]}AA.{signature}", "garbage"):
        browser.session.cookie_jar.clear()
        browser.session.cookie_jar.update_cookies({"gateway_console": forged})
        assert (await browser.get("/"))[0] == 303


async def test_sign_in_sets_an_http_only_strict_cookie(browser: Browser, world: World) -> None:
    response = await browser.sign_in(world.alpha.admin_key)
    assert response.status == 303
    assert response.headers["Location"] == "/console/"
    cookie = response.cookies["gateway_console"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    status, html = await browser.get("/")
    assert status == 200
    assert "Overview" in html


async def test_a_member_key_and_a_wrong_key_are_refused(browser: Browser, world: World) -> None:
    member = await browser.sign_in(world.alpha.member_key)
    assert member.status == 403
    assert "gateway_console" not in member.cookies
    wrong = await browser.sign_in("gw-not-a-key-000000000000")
    assert wrong.status == 401
    assert "gateway_console" not in wrong.cookies
    assert (await browser.get("/"))[0] == 303


async def test_a_team_admin_reads_only_its_own_team(browser: Browser, world: World) -> None:
    alpha, beta = world.alpha, world.beta
    await browser.sign_in(alpha.admin_key)
    status, html = await browser.get(f"/calls/{alpha.call_id}")
    assert status == 200
    assert alpha.call_id in html
    status, html = await browser.get(f"/calls/{beta.call_id}")
    assert status == 404
    assert "that this key may read" in html
    assert "beta" not in html
    assert (await browser.get(f"/keys/{beta.member_id}"))[0] == 403
    assert (await browser.get("/keys?team=beta"))[0] == 403
    assert (await browser.get("/report?team=beta"))[0] == 403
    assert (await browser.get("/report.json?team=beta"))[0] == 403
    status, listing = await browser.get("/calls?since=1h")
    assert alpha.call_id in listing
    assert beta.call_id not in listing
    status, keys = await browser.get("/keys")
    assert alpha.member_id in keys
    assert beta.member_id not in keys


async def test_a_team_admin_cannot_change_another_teams_key(browser: Browser, world: World) -> None:
    await browser.sign_in(world.alpha.admin_key)
    csrf = await browser.csrf()
    status, _, _ = await browser.post(f"/keys/{world.beta.member_id}/revoke", {"csrf": csrf})
    assert status == 403
    await world.admin.gateway.Chat(chat_request(), metadata=bearer(world.beta.member_key))  # still works


async def test_a_change_without_its_csrf_token_is_refused(browser: Browser, world: World) -> None:
    await browser.sign_in(world.alpha.admin_key)
    for form in ({}, {"csrf": "not-the-token"}):
        status, _, html = await browser.post(f"/keys/{world.alpha.member_id}/revoke", form)
        assert status == 403
        assert "CSRF" in html
    await world.admin.gateway.Chat(chat_request(), metadata=bearer(world.alpha.member_key))  # not revoked
    status, location, _ = await browser.post(f"/keys/{world.alpha.member_id}/revoke", {"csrf": await browser.csrf()})
    assert status == 303
    assert location == f"/console/keys/{world.alpha.member_id}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.admin.gateway.Chat(chat_request(), metadata=bearer(world.alpha.member_key))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_revoked_key_ends_its_own_sessions(browser: Browser, world: World) -> None:
    await browser.sign_in(world.alpha.admin_key)
    assert (await browser.get("/"))[0] == 200
    other = Browser(world.gateway)
    try:
        await other.sign_in(TEST_KEY)
        await other.post(f"/keys/{world.alpha.admin_id}/revoke", {"csrf": await other.csrf()})
    finally:
        await other.close()
    assert (await browser.get("/"))[0] == 303


async def test_a_new_key_is_shown_once_and_no_secret_is_in_any_page(browser: Browser, world: World) -> None:
    await browser.sign_in(TEST_KEY)
    status, _, created = await browser.post(
        "/keys", {"csrf": await browser.csrf(), "name": "ci", "team": "alpha", "role": "member", "rpm": "60"}
    )
    assert status == 200
    secret = created.split('<pre id="secret">')[1].split("</pre>")[0]
    assert secret.startswith("gw-")
    await world.admin.gateway.Chat(chat_request(), metadata=bearer(secret))  # the shown key works
    secrets = [TEST_KEY, secret, world.alpha.admin_key, world.alpha.member_key, world.beta.member_key]
    _, keys = await browser.get("/keys")
    new_id = keys.split(">ci<")[0].rsplit('href="/console/keys/', 1)[1].split('"')[0]
    pages = [
        "/",
        "/api/overview",
        "/calls",
        f"/calls/{world.alpha.call_id}",
        "/keys",
        f"/keys/{new_id}",
        "/teams",
        "/report?team=alpha",
        "/report.json?team=alpha",
        "/report.csv?team=alpha",
    ]
    for page in pages:
        status, html = await browser.get(page)
        assert status == 200, page
        for value in secrets:
            assert value not in html, page
        assert "bob@example.com" not in html, page  # bodies, when kept, are kept redacted


async def test_the_calls_filters_refuse_what_is_not_a_bound(browser: Browser, world: World) -> None:
    """A mistyped filter is the caller's error (400, saying what is wanted), not the console's (500)."""
    await browser.sign_in(TEST_KEY)
    for query in ("min_ms=fast", "min_usd=nan", "min_ms=-1"):
        status, html = await browser.get(f"/calls?{query}")
        assert status == 400, query
        assert "must be a number of 0 or more" in html, query
    status, _ = await browser.get("/calls?min_ms=250&min_usd=0.5")
    assert status == 200


async def test_forms_refuse_bad_values_with_the_admin_apis_message(browser: Browser, world: World) -> None:
    await browser.sign_in(TEST_KEY)
    status, _, html = await browser.post(
        "/keys", {"csrf": await browser.csrf(), "name": "x", "team": "alpha", "rpm": "many"}
    )
    assert status == 400
    assert "rpm must be a whole number" in html
    status, _, html = await browser.post("/keys", {"csrf": await browser.csrf(), "name": "x", "team": "nope"})
    assert status == 400
    assert "does not exist; create it first" in html
    status, _, html = await browser.post("/keys", {"csrf": await browser.csrf(), "name": "x", "role": "owner"})
    assert status == 400
    assert "role: &#39;owner&#39; is not one of admin, team-admin, member" in html
