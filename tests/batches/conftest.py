"""The batches tests' fixtures: a Harness (harness.py) on each provider's fake batch API, or on OpenAI's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.batches.harness import FAKES, Harness
from tests.fakes.batch_apis import FakeOpenAIBatches


@pytest.fixture(params=sorted(FAKES))
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    fake = await FAKES[request.param]().start()
    started = Harness(tmp_path, fake, monkeypatch)
    try:
        yield await started.start()
    finally:
        await started.stop()
        await fake.close()


@pytest.fixture
async def openai(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    fake = await FakeOpenAIBatches().start()
    started = Harness(tmp_path, fake, monkeypatch)
    try:
        yield started
    finally:
        await started.stop()
        await fake.close()
