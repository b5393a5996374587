"""What the tests that need the MiniLM embedding model do without it: the semantic cache's, the combined injection
model's and the held-out floors of verify and injection. They skip, saying so, unless GATEWAY_TEST_REQUIRE_EMBEDDER=1
(set by .ci/run), which makes that a failure: in CI a missing model fails the floors instead of skipping them."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from gateway.cache.semantic.embedder import EmbeddingModelMissing


def skip_without(missing: EmbeddingModelMissing, *, module_level: bool = False) -> NoReturn:
    if os.environ.get("GATEWAY_TEST_REQUIRE_EMBEDDER") == "1":
        pytest.fail(f"the embedding model is required (GATEWAY_TEST_REQUIRE_EMBEDDER=1) but missing: {missing}")
    pytest.skip(f"the embedding model is not installed: {missing}", allow_module_level=module_level)
