"""The console in a real browser: Debian's chromium, headless, driven through chromium-driver by Selenium. Signs in,
watches the overview's plots draw the calls made here, opens a call, revokes a key and sees the next call refused,
and downloads the compliance report. Screenshots of each page go to var/screenshots/console/ (or
$GATEWAY_TEST_SCREENSHOTS) for a reviewer.

Skips, saying why, where chromium or its driver is not installed (scripts/install-test-services.sh installs both);
with GATEWAY_TEST_REQUIRE_CHROMIUM=1 (CI) that is a failure instead."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb
from pypdf import PdfReader

from tests.admin.helpers import Admin, bearer, chat_request
from tests.console.helpers import CONFIG, base, team
from tests.server.fixtures import AUTH, TEST_KEY, StartGateway

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

T = TypeVar("T")
_WAIT_S = 30.0  # generous: the machine is shared and the page refreshes every 5 s
SCREENSHOTS = Path(
    os.environ.get("GATEWAY_TEST_SCREENSHOTS", Path(__file__).resolve().parents[2] / "var" / "screenshots" / "console")
)


def _chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    reason = "chromium or chromedriver is not installed (scripts/install-test-services.sh installs them)"
    if os.environ.get("GATEWAY_TEST_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason + "; GATEWAY_TEST_REQUIRE_CHROMIUM=1 forbids skipping")
    pytest.skip(reason)


@pytest.fixture
async def chrome(tmp_path: Path) -> AsyncIterator[webdriver.Chrome]:
    browser, driver_path = _chromium()
    options = Options()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(flag)
    # The path given: Selenium Manager would otherwise try to download a driver, which this network cannot.
    driver = await asyncio.to_thread(webdriver.Chrome, service=Service(driver_path), options=options)
    await asyncio.to_thread(
        driver.execute_cdp_cmd, "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    try:
        yield driver
    finally:
        await asyncio.to_thread(driver.quit)


async def _in_browser(work: Callable[[], T]) -> T:
    """Selenium blocks; the gateway under test serves on this event loop, so the browser is driven from a thread."""
    return await asyncio.to_thread(work)


def _wait(driver: webdriver.Chrome, script: str) -> None:
    WebDriverWait(driver, _WAIT_S).until(lambda d: d.execute_script(script))


def _shot(driver: webdriver.Chrome, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


async def test_the_console_in_chromium(start_gateway: StartGateway, chrome: webdriver.Chrome, tmp_path: Path) -> None:
    gateway, channel = await start_gateway(CONFIG, http=True)
    admin = Admin.on(channel)
    alpha = await team(admin, "alpha")
    beta = await team(admin, "beta")
    budget = apb.Budget(scope="team", subject="beta", period="month", hard_usd=0.05)
    await admin.admin.SetBudget(apb.SetBudgetRequest(budget=budget), metadata=AUTH)
    for _ in range(4):
        await admin.gateway.Chat(chat_request(text="what is the capital of France?"), metadata=bearer(beta.member_key))
    async for _ in admin.gateway.ChatStream(chat_request(text="and of Spain?"), metadata=bearer(beta.member_key)):
        pass  # a stream, for the time-to-first-chunk plot
    with pytest.raises(grpc.aio.AioRpcError):  # an error for the plots: a card number is blocked
        await admin.gateway.Chat(chat_request(text="card 4111 1111 1111 1111"), metadata=bearer(beta.member_key))
    console = base(gateway)

    def sign_in() -> str:
        chrome.get(console + "/")
        assert chrome.current_url.endswith("/console/login")
        chrome.find_element(By.ID, "key").send_keys(TEST_KEY)
        chrome.find_element(By.ID, "signin").click()
        _wait(chrome, "return document.getElementById('overview')?.dataset.loaded === 'true'")
        _wait(chrome, "return document.getElementById('chart-requests').dataset.drawn === 'true'")
        total = chrome.execute_script(
            "const c = Chart.getChart('chart-requests');"
            "return c.data.datasets[0].data.reduce((a, b) => a + b, 0) + ',' +"
            " c.data.datasets[1].data.reduce((a, b) => a + b, 0);"
        )
        _wait(chrome, "return Chart.getChart('chart-spend-team').data.labels.length > 0")
        _wait(chrome, "return Chart.getChart('chart-budgets').data.labels.length > 0")
        _wait(chrome, "return Chart.getChart('chart-ttfc').data.labels.length > 0")
        _wait(chrome, "return document.getElementById('processes').textContent === '1'")
        time.sleep(0.5)  # let the last frame paint before the picture
        _shot(chrome, "overview")
        return str(total)

    answered, failed = (await _in_browser(sign_in)).split(",")
    assert (int(answered), int(failed)) == (7, 1)  # the two teams' calls made above

    def open_call() -> str:
        chrome.get(console + "/calls?since=1h")
        chrome.find_element(By.LINK_TEXT, alpha.call_id).click()
        _shot(chrome, "call")
        return str(chrome.find_element(By.ID, "status").text)

    assert (await _in_browser(open_call)).startswith("OK")

    def revoke() -> str:
        chrome.get(console + f"/keys/{alpha.member_id}")
        _shot(chrome, "key")
        button = chrome.find_element(By.ID, "revoke")
        button.click()
        # The form posts and the key's page loads again: read the state from the new page, not the one going away.
        WebDriverWait(chrome, _WAIT_S).until(expected_conditions.staleness_of(button))
        return str(chrome.find_element(By.ID, "key-state").text)

    assert (await _in_browser(revoke)).startswith("revoked")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await admin.gateway.Chat(chat_request(), metadata=bearer(alpha.member_key))
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED

    def download() -> Path:
        chrome.get(console + "/report?team=alpha&since=1d")
        _shot(chrome, "report")
        chrome.find_element(By.ID, "download-pdf").click()
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            done = list(tmp_path.glob("compliance-alpha-*.pdf"))
            if done:
                return done[0]
            time.sleep(0.2)
        raise AssertionError(f"no report downloaded into {tmp_path}: {sorted(tmp_path.iterdir())}")

    pdf = await _in_browser(download)
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Compliance report: team alpha" in text
    assert "revoked" in text
