"""The README's config examples are valid configs: the documentation cannot drift from the schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gateway.config.loader import ConfigError, parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_examples_validate() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    providers_and_models = next(b for b in blocks if b.startswith("providers:"))
    routes = next(b for b in blocks if b.startswith("routes:"))
    teams = next(b for b in blocks if b.startswith("teams:"))
    guardrails = next(b for b in blocks if b.startswith("guardrails:"))
    config = parse_config(
        providers_and_models + routes + teams.replace("sim-fast", "gpt-4o-mini") + guardrails,
        source="README.md",
    )
    assert {r.name for r in config.routes} == {"chat-default", "ab-test", "fastest", "cheapest", "auto"}
    assert config.keys[0].models == frozenset({"gpt-4o-mini", "llama"})
    assert config.teams[0].budgets[0].downgrade_to == "gpt-4o-mini"
    assert config.server.max_in_flight == 10_000
    assert config.state.database_url is not None
    assert config.guardrails is not None
    assert config.residency is not None


def test_readme_cache_example_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    cache = next(b for b in blocks if b.startswith("cache:"))
    config = parse_config("providers:\n  - {name: openai, type: openai}\n" + cache, source="README.md")
    assert config.cache.backend == "memory"
    assert config.cache.max_bytes == 268435456
    assert config.models[0].cache is not None
    assert config.models[0].cache.semantic
    assert config.routes[0].cache is not None
    assert config.routes[0].cache.shared


def test_no_merge_conflict_markers_in_the_docs() -> None:
    """A merge that left its markers in the README once went unseen through a whole session."""
    root = README.parent
    marked = [
        f"{path.relative_to(root)}:{number}"
        for path in [README, *sorted((root / "docs").rglob("*.md"))]
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"(<{7}|>{7})( |$)|={7}$", line)
    ]
    assert marked == []


def test_readme_batches_example_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    batches = next(b for b in blocks if b.startswith("batches:"))
    config = parse_config("providers:\n  - {name: openai, type: openai}\n" + batches, source="README.md")
    assert config.batches.fallback == "individual"
    assert config.models[0].batch_input_cost_per_mtok == 0.075


CONTEXT = """
models:
  - {name: gpt-4o, provider: openai}
  - {name: sim-fast, provider: openai}
"""
"""Models the README's examples name from the embedded default (gpt-4o with its key set, sim-fast) that its first
providers example leaves out."""


def with_context(block: str, context: str) -> str:
    """`block` on top of `context`: top-level lists joined, mappings merged, the block's scalars kept."""
    merged: dict[str, Any] = yaml.safe_load(context)
    for name, value in yaml.safe_load(block).items():
        known = merged.get(name)
        if isinstance(known, list) and isinstance(value, list):
            merged[name] = known + value
        elif isinstance(known, dict) and isinstance(value, dict):
            merged[name] = {**known, **value}
        else:
            merged[name] = value
    return yaml.safe_dump(merged)


def test_every_yaml_example_in_the_readme_is_a_valid_config() -> None:
    """Each ```yaml block parses as it is, on the README's first example's providers, or on that whole example and
    the default's models it names: a new example that drifts from the schema fails here without a test of its own."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    first = next(b for b in blocks if b.startswith("providers:"))
    contexts = [None, yaml.safe_dump({"providers": yaml.safe_load(first)["providers"]}), with_context(CONTEXT, first)]
    errors = []
    for block in blocks:
        for context in contexts:
            try:
                parse_config(block if context is None else with_context(block, context), source="README.md")
                break
            except ConfigError as err:
                error = f"{block.splitlines()[0]}...: {err}"
        else:
            errors.append(error)
    assert errors == []
