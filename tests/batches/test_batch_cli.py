"""`gateway batch submit | status | results | list | cancel` against a gateway on a fake OpenAI batch API, with a
file in OpenAI's batch input format as it is (its lines name OpenAI's model; -m names the gateway's)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from gateway.cli.main import main
from tests.batches.harness import Harness
from tests.server.fixtures import TEST_KEY


async def gateway_cli(harness: Harness, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `gateway ARGS --address HARNESS`, run in a thread (the gateway answers on this
    loop meanwhile)."""
    assert harness.gateway is not None
    code = await asyncio.to_thread(main, [*args, "--address", f"127.0.0.1:{harness.gateway.port}"])
    out, err = capsys.readouterr()
    return code, out, err


async def test_submit_follow_and_read_results(
    openai: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", TEST_KEY)
    await openai.start()
    lines = [
        {
            "custom_id": f"task-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Summarise {i}"}]},
        }
        for i in range(3)
    ]
    path = tmp_path / "batch.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    code, out, _ = await gateway_cli(openai, capsys, "batch", "submit", str(path), "-m", "batchy", "--json")
    assert code == 0
    batch_id = orjson.loads(out)["id"]
    code, out, _ = await gateway_cli(openai, capsys, "batch", "status", batch_id)
    assert code == 0
    assert "queued" in out
    assert "3 pending" in out
    await openai.rounds(5)
    code, out, _ = await gateway_cli(openai, capsys, "batch", "results", batch_id)
    assert code == 0
    results = {r["custom_id"]: r for r in map(orjson.loads, out.splitlines())}
    assert set(results) == {"task-0", "task-1", "task-2"}
    assert results["task-1"]["answer"]["message"]["content"] == "answer to item-1"
    code, out, _ = await gateway_cli(openai, capsys, "batch", "list")
    assert code == 0
    assert batch_id in out
    assert "completed" in out
    code, _, err = await gateway_cli(openai, capsys, "batch", "cancel", batch_id)
    assert code == 1
    assert "FAILED_PRECONDITION" in err


async def test_a_bad_line_is_named_before_anything_is_sent(
    openai: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_API_KEY", TEST_KEY)
    await openai.start()
    path = tmp_path / "batch.jsonl"
    path.write_text('{"custom_id": "a", "url": "/v1/embeddings", "method": "POST", "body": {}}\n')
    with pytest.raises(SystemExit, match="line 1"):
        await gateway_cli(openai, capsys, "batch", "submit", str(path), "-m", "batchy")
    assert openai.fake.requests == []
