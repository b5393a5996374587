"""A real PostgreSQL server for the tests (a pytest plugin, see tests/conftest.py): one per test session, started from
the Debian packages' binaries on a free loopback port, in a throwaway data folder, and a fresh database per test.

Without the binaries the tests that need it are skipped, unless GATEWAY_TEST_REQUIRE_POSTGRES=1 (set by .ci/run,
which installs them) turns that into a failure.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from itertools import count
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.database import open_engine
from tests.server.process import free_port

_databases = count()


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The server's base URL (without a database name)."""
    binaries = _binaries()
    if binaries is None:
        if os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (GATEWAY_TEST_REQUIRE_POSTGRES=1) but not installed")
        pytest.skip("PostgreSQL binaries not installed (apt-get install -y postgresql)")
    root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    # PostgreSQL refuses to run as root: as root, run it as the packages' postgres user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "gateway", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            *as_user,
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while subprocess.run(
        [str(binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
    ).returncode:
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail("PostgreSQL did not start")
        time.sleep(0.1)
    try:
        yield f"postgresql+asyncpg://gateway@127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


async def fresh_database(server: str) -> str:
    """Creates an empty database on the server; returns its SQLAlchemy URL."""
    name = f"test_{os.getpid()}_{next(_databases)}"
    connection = await asyncpg.connect(f"{server.replace('postgresql+asyncpg', 'postgresql')}/postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"{server}/{name}"


@pytest.fixture
async def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    return await fresh_database(postgres_server)


@contextlib.asynccontextmanager
async def opened_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """`request.param`, "sqlite" or "postgres": an opened engine with the schema on a fresh database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    else:
        url = await fresh_database(request.getfixturevalue("postgres_server"))
    opened = await open_engine(url)
    yield opened
    await opened.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An opened engine with the schema, on each database the gateway supports: a test using it runs twice."""
    async with opened_database(request, tmp_path) as opened:
        yield opened
