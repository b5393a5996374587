"""A real Redis server for the tests (a pytest plugin, see tests/conftest.py): one per test session, started from the
Debian package's binary on a free loopback port with persistence off, flushed before each test that asks for it.

Without the binary the tests that need it are skipped, unless GATEWAY_TEST_REQUIRE_REDIS=1 (set by .ci/run, which
installs it) turns that into a failure.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from tests.server.process import free_port


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the forked child before exec: the kernel sends redis-server SIGTERM when the test process dies, also
    when nothing tears the fixture down (mutmut stops a mutant's tests that outrun its timeout with a signal)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_redis(port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("GATEWAY_TEST_REQUIRE_REDIS") == "1":
            pytest.fail("Redis is required (GATEWAY_TEST_REQUIRE_REDIS=1) but redis-server is not installed")
        pytest.skip("redis-server not installed (apt-get install -y redis-server)")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    client.close()
    return process


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    port = free_port()
    server = RedisServer(start_redis(port), port)
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=15)


@pytest.fixture
def redis_server(redis_session: RedisServer) -> RedisServer:
    """The session's server, empty at the start of the test."""
    client = redis_session.client()
    client.flushall()
    client.close()
    return redis_session
