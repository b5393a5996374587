"""The admin commands (`gateway keys | teams | budget | usage | audit`) against a running server process."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.process import Server, clean_environment, gateway

ADMIN_KEY = "gw-cli-admin-key"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, {**clean_environment(), "GATEWAY_BOOTSTRAP_KEY": ADMIN_KEY})
    yield running
    running.stop()


def run(server: Server, *args: str, key: str = ADMIN_KEY) -> str:
    env = {**clean_environment(), "GATEWAY_ADMIN_KEY": key, "GATEWAY_API_KEY": key}
    done = gateway(*args, "--address", server.address, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_issue_use_list_and_revoke_a_key(server: Server) -> None:
    run(server, "teams", "create", "research", "--bodies", "redacted", "--retention-days", "14")
    created = json.loads(
        run(
            server,
            "keys",
            "create",
            "--team",
            "research",
            "--models",
            "sim-fast",
            "--rpm",
            "60",
            "--budget-usd",
            "10/month",
            "--json",
        )
    )
    key, key_id = created["key"], created["id"]
    assert key.startswith("gw-")
    assert created["spec"]["models"] == ["sim-fast"]
    assert created["budgets"][0]["hard_usd"] == 10.0
    answer = run(server, "chat", "-m", "sim-fast", "--no-stream", "Hello", key=key)
    assert "completion tokens" in answer

    listing = run(server, "keys", "list", "--team", "research")
    assert key_id in listing
    assert key not in listing
    usage = json.loads(run(server, "usage", "--team", "research", "--since", "7d", "--json"))
    assert usage["rows"][0]["group"] == "research"
    assert int(usage["rows"][0]["requests"]) == 1
    assert "forecast" in run(server, "usage", "--team", "research", "--group-by", "model")

    audit = json.loads(run(server, "audit", "--key", key_id, "--json"))
    assert [r["status"] for r in audit] == ["OK"]
    one = json.loads(run(server, "audit", "--request-id", audit[0]["request_id"], "--json"))
    assert one[0]["key_id"] == key_id

    revoked = run(server, "keys", "revoke", key_id)
    assert re.search(r"^revoked\s+\d{4}-\d\d-\d\d", revoked, re.MULTILINE), revoked
    env = {**clean_environment(), "GATEWAY_API_KEY": key}
    refused = gateway("chat", "-m", "sim-fast", "--no-stream", "Hello", "--address", server.address, env=env)
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr


def test_rotate_update_budget_and_export(server: Server, tmp_path: Path) -> None:
    run(server, "teams", "create", "ops")
    created = json.loads(run(server, "keys", "create", "--team", "ops", "--json"))
    rotated = json.loads(run(server, "keys", "rotate", created["id"], "--grace", "0s", "--json"))
    assert rotated["key"] != created["key"]
    updated = json.loads(
        run(
            server,
            "keys",
            "update",
            created["id"],
            "--models",
            "sim-fast,sim-smart",
            "--hours",
            "00:00-24:00",
            "--json",
        )
    )
    assert sorted(updated["spec"]["models"]) == ["sim-fast", "sim-smart"]
    assert updated["spec"]["conditions"]["hours"] == "00:00-24:00"
    budget = json.loads(
        run(
            server,
            "budget",
            "set",
            "--team",
            "ops",
            "--period",
            "day",
            "--soft-usd",
            "1",
            "--downgrade-to",
            "sim-fast",
            "--json",
        )
    )
    assert budget["soft_usd"] == 1.0
    assert "ops" in run(server, "teams", "list")
    run(server, "chat", "-m", "sim-fast", "--no-stream", "Hello", key=rotated["key"])
    out = tmp_path / "audit.jsonl"
    run(server, "audit", "--export", str(out), "--since", "1h")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["team"] for line in lines] == ["ops"]
    assert "1 audit records purged" in run(server, "audit", "--purge-older-than", "0s")


def test_admin_commands_explain_what_is_missing(server: Server) -> None:
    no_key = gateway("keys", "list", "--address", server.address, env=clean_environment())
    assert no_key.returncode != 0
    assert "GATEWAY_ADMIN_KEY" in no_key.stderr
    bad = gateway(
        "keys",
        "create",
        "--team",
        "nobody",
        "--address",
        server.address,
        env={**clean_environment(), "GATEWAY_ADMIN_KEY": ADMIN_KEY},
    )
    assert bad.returncode == 1
    assert "FAILED_PRECONDITION" in bad.stderr
    assert "CreateTeam" in bad.stderr
    bad_budget = gateway(
        "keys",
        "create",
        "--team",
        "x",
        "--budget-usd",
        "ten",
        "--address",
        server.address,
        env={**clean_environment(), "GATEWAY_ADMIN_KEY": ADMIN_KEY},
    )
    assert "10/month" in bad_budget.stderr


def test_replay_and_compare(server: Server, tmp_path: Path) -> None:
    run(server, "teams", "create", "lab", "--bodies", "full")
    key = json.loads(run(server, "keys", "create", "--team", "lab", "--json"))["key"]
    answer = json.loads(run(server, "chat", "-m", "sim-fast", "--json", "Name a river", key=key))
    replayed = json.loads(run(server, "replay", answer["id"], "--target", "sim-smart", "--json"))
    assert replayed["original"]["id"] == answer["id"]
    assert replayed["replayed"]["model"] == "sim-smart"
    table = run(server, "replay", answer["id"])
    assert "similarity" in table
    assert "--- replayed ---" in table
    compared = json.loads(run(server, "compare", "--targets", "sim-fast,sim-smart", "--json", "Name a river"))
    assert [r["target"] for r in compared["results"]] == ["sim-fast", "sim-smart"]
    assert compared["similarities"][0]["a"] == "sim-fast"
    side_by_side = run(server, "compare", "--targets", "sim-fast,sim-smart", "Name a river")
    assert "--- sim-smart ---" in side_by_side


def test_chat_through_the_cache_then_stats_and_purge(server: Server) -> None:
    ask = ("chat", "-m", "sim-fast", "--no-stream", "--cache", "read_write", "What is a gateway?")
    assert "cache hit" not in run(server, *ask)
    again = run(server, *ask)
    assert re.search(r"exact cache hit [0-9a-f]{32} \(\d+ s old, similarity 1\.000\)", again), again
    stats = json.loads(run(server, "cache", "stats", "--json"))
    assert stats["backend"] == "memory"
    assert int(stats["entries"]) == 1
    assert int(stats["exact_hits"]) == 1
    assert "1 entries" in run(server, "cache", "stats")
    env = {**clean_environment(), "GATEWAY_ADMIN_KEY": ADMIN_KEY}
    unfiltered = gateway("cache", "purge", "--address", server.address, env=env)
    assert unfiltered.returncode == 2
    assert "--all" in unfiltered.stderr
    assert "purged 1 entries" in run(server, "cache", "purge", "--all")
    assert "cache hit" not in run(server, *ask)
