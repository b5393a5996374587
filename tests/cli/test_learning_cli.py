"""`gateway feedback` and `gateway profiles` against a running server process with a learned route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serving import run, serving
from tests.insights.test_feedback import CONFIG
from tests.server.process import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path, CONFIG) as running:
        yield running


def test_rate_a_call_and_read_the_profiles(server: Server) -> None:
    code, out, err = run(server, "chat", "-m", "smart", "--no-stream", "--json", "Name a lake")
    assert code == 0, err
    call = json.loads(out)
    code, out, err = run(server, "feedback", call["id"], "--thumbs", "thumbs=up", "--score", "stars=5", "--json")
    assert code == 0, err
    assert [(r["metric"], r["quality"]) for r in json.loads(out)["recorded"]] == [("thumbs", 1.0), ("stars", 1.0)]
    code, out, err = run(server, "feedback", call["id"], "--score", "stars=9")
    assert code == 1
    assert "INVALID_ARGUMENT" in err
    assert "outside its range" in err
    code, out, err = run(server, "profiles", "--route", "smart")
    assert code == 0, err
    assert call["model"] in out
    assert call["route"]["learned"]["query_type"] in out
    assert "1.00±" in out  # quality with its uncertainty


def test_evaluate_a_learned_route_offline(server: Server) -> None:
    for i in range(4):
        code, out, err = run(server, "chat", "-m", "smart", "--no-stream", "--json", f"Name a lake {i}")
        assert code == 0, err
        code, _, err = run(server, "feedback", json.loads(out)["id"], "--thumbs", "thumbs=up")
        assert code == 0, err
    code, out, err = run(server, "evaluate-policy", "--route", "smart", "--since", "1h")
    assert code == 0, err
    assert "route smart: 4 calls with feedback" in out
    header, *rows = out.splitlines()[1:]
    assert header.split()[:2] == ["POLICY", "OBJECTIVE"]
    assert [row.split()[0] for row in rows] == ["logged", "learned", "bad", "good"]
    assert rows[0].split()[1:3] == ["1.000", "[1.000,"]  # every call rated good: no spread
    code, out, err = run(server, "evaluate-policy", "--route", "smart", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert found["rated_calls"] == "4"  # uint64 in proto JSON is a string
    assert found["policies"][0]["matched"] == "4"
    code, out, err = run(server, "evaluate-policy", "--route", "nope")
    assert code == 1
    assert "NOT_FOUND" in err
    assert "learned routes: smart" in err
