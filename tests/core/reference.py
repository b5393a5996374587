"""OpenAI's tiktoken as the reference for token ids, loaded offline from the vocabulary files in shared/data.

tiktoken downloads its vocabularies at run time, which fails without a network; the same files sit in
../shared/data/tiktoken (or $TIKTOKEN_DATA_DIR). Used by tests and benchmarks only: the product embeds its own.

Without the files the tests that compare with tiktoken are skipped, unless GATEWAY_TEST_REQUIRE_TIKTOKEN=1 (set by
.ci/run) turns that into a failure: most token tests need them, and a silent skip would leave them unchecked.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

DATA_DIR = Path(
    os.environ.get("TIKTOKEN_DATA_DIR", Path(__file__).resolve().parents[2] / ".." / "shared/data/tiktoken")
)


@functools.cache
def reference_encoding(name: str) -> tiktoken.Encoding:
    if not (DATA_DIR / f"{name}.tiktoken").exists():
        missing = f"tiktoken reference vocabulary {name} not found in {DATA_DIR} (set TIKTOKEN_DATA_DIR)"
        if os.environ.get("GATEWAY_TEST_REQUIRE_TIKTOKEN") == "1":
            pytest.fail(f"{missing}; it is required (GATEWAY_TEST_REQUIRE_TIKTOKEN=1)")
        pytest.skip(missing)

    def load_local(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        return tiktoken.load.load_tiktoken_bpe(str(DATA_DIR / Path(url).name), expected_hash=expected_hash)

    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = load_local
    try:
        spec: dict[str, Any] = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)
