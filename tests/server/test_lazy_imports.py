"""A gateway imports what its config uses, only when it uses it: each optional part costs megabytes a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

OPTIONAL = (
    "numpy",  # the semantic cache's vectors
    "onnxruntime",  # its embedding model
    "tokenizers",
    "gateway.cache.semantic.matcher",  # its verify stage's word lists
    "redis",  # state.redis_url, cache.backend redis
    "asyncpg",  # a PostgreSQL database
    "psycopg",
    "sqlalchemy.dialects.postgresql",
    "opentelemetry.exporter",  # OTLP tracing
    "gateway.observe.span_sinks",
    "botocore",  # a bedrock provider: AWS credentials, SigV4, event-stream
    "gateway.providers.bedrock",
    "jinja2",  # the console, on the HTTP front door only
    "fpdf",  # compliance reports as PDF
)
BUILD = """
import asyncio, json, sys, pathlib
from gateway.config.loader import parse_config
from gateway.server.app import build_gateway

async def main():
    config = parse_config(sys.stdin.read())
    state_dir = pathlib.Path(sys.argv[1])
    gateway = await build_gateway(config, address="127.0.0.1:0", state_dir=state_dir, metrics_address="")
    await gateway.server.start()
    await gateway.stop(0)

asyncio.run(main())
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {OPTIONAL_ROOTS} or name in {OPTIONAL})))
"""
BASE = """
providers: [{name: sim, type: simulated}]
models: [{name: fast, provider: sim, tokenizer: o200k_base}]
"""


def _run(script: str, tmp_path: Path, config: str) -> Any:
    """The JSON that `script` prints last, run in a fresh interpreter with the config on stdin."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        input=config,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _imported(tmp_path: Path, config: str) -> set[str]:
    roots = {name.split(".")[0] for name in OPTIONAL if not name.startswith("gateway")}
    script = BUILD.replace("{OPTIONAL_ROOTS}", repr(roots)).replace("{OPTIONAL}", repr(set(OPTIONAL)))
    names: list[str] = _run(script, tmp_path, config)
    return {name for name in OPTIONAL if any(n == name or n.startswith(name + ".") for n in names)}


def test_a_plain_config_imports_none_of_the_optional_parts(tmp_path: Path) -> None:
    assert _imported(tmp_path, BASE) == set()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("cache: {backend: redis, redis_url: 'redis://127.0.0.1:1/0'}\n", {"redis"}),
        ("state: {redis_url: 'redis://127.0.0.1:1/0'}\n", {"redis"}),
        (
            "observe: {tracing: {exporter: otlp, endpoint: 'http://127.0.0.1:1'}}\n",
            {"opentelemetry.exporter", "gateway.observe.span_sinks"},
        ),
    ],
)
def test_what_a_config_uses_is_imported(tmp_path: Path, extra: str, expected: set[str]) -> None:
    assert _imported(tmp_path, BASE + extra) == expected


def test_a_bedrock_provider_imports_botocore(tmp_path: Path) -> None:
    config = """
providers: [{name: sim, type: simulated}, {name: aws, type: bedrock, region: us-east-1}]
models: [{name: fast, provider: sim, tokenizer: o200k_base}, {name: claude, provider: aws}]
"""
    assert _imported(tmp_path, config) == {"botocore", "gateway.providers.bedrock"}


FIRST_COUNT = """
import asyncio, json, sys, pathlib
from gateway import _core
from gateway.config.loader import parse_config
from gateway.server.app import build_gateway

def anonymous():
    line = next(l for l in pathlib.Path("/proc/self/status").read_text().splitlines() if l.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024

async def main():
    config = parse_config(sys.stdin.read())
    state_dir = pathlib.Path(sys.argv[1])
    gateway = await build_gateway(config, address="127.0.0.1:0", state_dir=state_dir, metrics_address="")
    await gateway.server.start()
    started = anonymous()
    _core.count_tokens("hello", "o200k_base")
    print(json.dumps({"started": started, "counted": anonymous()}))
    await gateway.stop(0)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self")
def test_a_models_vocabulary_is_loaded_by_its_first_count_not_at_start(tmp_path: Path) -> None:
    result = _run(FIRST_COUNT, tmp_path, BASE)
    # o200k_base holds ~17 MB once built: a gateway that loaded it at start would grow by next to nothing here.
    assert result["counted"] - result["started"] > 8 * 2**20
