"""A `gateway serve` process on a config for the CLI's tests, and the CLI run against it with the bootstrap key as
both the admin and the API key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.server.process import Server, clean_environment, gateway

KEY = "gw-cli-test-key"


@contextmanager
def serving(tmp_path: Path, config: str) -> Iterator[Server]:
    path = tmp_path / "gateway.yaml"
    path.write_text(config)
    running = Server(tmp_path, {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": KEY}, "--config", str(path))
    try:
        yield running
    finally:
        running.stop()


def run(server: Server, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `gateway ARGS --address SERVER`."""
    env = {**clean_environment(), "GATEWAY_ADMIN_KEY": KEY, "GATEWAY_API_KEY": KEY}
    done = gateway(*args, "--address", server.address, env=env)
    return done.returncode, done.stdout, done.stderr
