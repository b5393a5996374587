"""`gateway analytics` against a running server process with a learned route."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.serving import run, serving
from tests.insights.test_correlation_analytics import CONFIG
from tests.server.process import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serving(tmp_path, CONFIG) as running:
        yield running


def test_the_analytics_command(server: Server) -> None:
    for i in range(12):
        text = "Write a haiku" if i % 2 else "Ecris un poème sur la mer et le vent"
        code, _, err = run(server, "chat", "-m", "smart", "--no-stream", text)
        assert code == 0, err
    code, out, err = run(server, "analytics", "--since", "1h")
    assert code == 0, err
    assert "relationships in 12 answered calls (associations, not causes)" in out
    assert "cheaper models (quality metric: thumbs)" in out
    code, out, err = run(server, "analytics", "--json")
    assert code == 0, err
    assert json.loads(out)["analysed_calls"] == "12"
    code, out, err = run(server, "analytics", "--metric", "speed")
    assert code == 1
    assert "quality_metric 'speed' is not declared" in err
