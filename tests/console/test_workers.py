"""The console under `gateway serve --workers 2`, as operators run it: a session made on one worker is honoured by
the other, a revoked key's session ends on both, and the overview's live figures are both workers'.

Which worker takes a connection is the kernel's choice (SO_REUSEPORT), so the test holds many client connections,
each its own cookie jar carrying the one session, and checks from /proc that both workers hold some."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import grpc
import orjson
from llmgateway.v1 import admin_pb2 as apb

from tests.admin.helpers import Admin
from tests.server.fixtures import AUTH, TEST_KEY
from tests.server.process import Server, clean_environment, client_connections, free_port, worker_pids

SERVING = "2 workers serving"
CHANNELS = 24
"""Client connections held: the chance that all land on one of two workers is 2^-23."""

CONFIG = """
providers: [{name: sim, type: simulated, simulation: {max_answer_tokens: 8}}]
models: [{name: fast, provider: sim}]
"""
WAIT_S = 20.0
"""How long a change may take to reach the other worker on a loaded machine (notices are near-instant; the periodic
sync is the fallback)."""


async def statuses(sessions: list[aiohttp.ClientSession], url: str) -> list[int]:
    found = []
    for session in sessions:
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            found.append(response.status)
    return found


async def test_a_session_is_honoured_and_ended_on_every_worker(tmp_path: Path) -> None:
    http_port = free_port()
    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG)
    env = {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": TEST_KEY, "GATEWAY_HTTP_ADDR": f"127.0.0.1:{http_port}"}
    server = Server(tmp_path / "state", env, "--config", str(path), "--workers", "2", ready=SERVING)
    console = f"http://127.0.0.1:{http_port}/console"
    sessions: list[aiohttp.ClientSession] = []
    channel = grpc.aio.insecure_channel(server.address)
    try:
        admin = Admin.on(channel)
        secret, info = await admin.key("ops", role="team-admin", name="ops-admin")
        # The new key reaches the other worker through the supervisor's relay: a sign-in that worker takes before
        # the relay lands is refused, so sign in until one is accepted (within WAIT_S on a loaded machine).
        deadline = time.monotonic() + WAIT_S
        cookie = ""
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as signing:
            while not cookie and time.monotonic() < deadline:
                async with signing.post(console + "/login", data={"key": secret}, allow_redirects=False) as signed_in:
                    if signed_in.status == 303:
                        cookie = signed_in.cookies["gateway_console"].value
                    else:
                        assert signed_in.status == 401
                        await asyncio.sleep(0.1)
        assert cookie, "no worker accepted the new key's sign-in"
        for _ in range(CHANNELS):  # each its own connection, kept open between requests
            session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            session.cookie_jar.update_cookies({"gateway_console": cookie})
            sessions.append(session)

        deadline = time.monotonic() + WAIT_S
        found = await statuses(sessions, console + "/")
        while time.monotonic() < deadline and found != [200] * CHANNELS:
            await asyncio.sleep(0.2)
            found = await statuses(sessions, console + "/")
        assert found == [200] * CHANNELS
        held = {index: client_connections(pid, http_port) for index, pid in worker_pids(server).items()}
        assert len(held) == 2
        assert all(held.values()), f"console connections per worker: {held}"

        # The overview's live figures are both workers', whichever serves the page.
        deadline = time.monotonic() + WAIT_S
        processes: set[int] = set()
        while time.monotonic() < deadline:
            processes = set()
            for session in sessions:
                async with session.get(console + "/api/overview?range=15m") as response:
                    processes.add(orjson.loads(await response.read())["live"]["processes"])
            if processes == {2}:
                break
            await asyncio.sleep(0.5)
        assert processes == {2}

        await admin.admin.RevokeKey(apb.RevokeKeyRequest(key_id=info.id), metadata=AUTH)
        deadline = time.monotonic() + WAIT_S
        found = await statuses(sessions, console + "/")
        while time.monotonic() < deadline and found != [303] * CHANNELS:
            await asyncio.sleep(0.5)
            found = await statuses(sessions, console + "/")
        assert found == [303] * CHANNELS
        held = {index: client_connections(pid, http_port) for index, pid in worker_pids(server).items()}
        assert all(held.values()), f"console connections per worker: {held}"
    finally:
        for session in sessions:
            await session.close()
        await channel.close()
        server.stop()
