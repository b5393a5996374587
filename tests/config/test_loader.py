"""Config loading: valid files become typed objects; invalid ones name the line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, ProviderType, load_config, load_default_config
from gateway.config.loader import parse_config

VALID = """
providers:
  - name: local-openai
    type: openai
    base_url: http://127.0.0.1:8000/v1
    api_key_env: OPENAI_API_KEY
models:
  - name: gpt-4o-mini
    provider: local-openai
    upstream_model: gpt-4o-mini
    input_cost_per_mtok: 0.15
    output_cost_per_mtok: 0.60
    context_window: 128000
"""


def test_issue_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(VALID)
    config = load_config(path)
    assert config.providers[0].type is ProviderType.OPENAI
    assert config.providers[0].url == "http://127.0.0.1:8000/v1"
    assert config.models[0].upstream == "gpt-4o-mini"
    assert config.models[0].input_cost_per_mtok == 0.15


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("type: openai", "type: opnai"), "<t>:4: providers[0].type: Input should be 'openai'"),
        (VALID.replace("context_window: 128000", "context_window: -5"), "<t>:13: models[0].context_window"),
        (
            VALID.replace("    upstream_model: gpt-4o-mini\n", "    upstrem_model: x\n"),
            "<t>:10: models[0].upstrem_model",
        ),
        (VALID.replace("provider: local-openai", "provider: missing"), "names unknown provider 'missing'"),
        ("providers: [", "<t>:1: invalid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        (VALID.replace("type: openai", "type: azure_openai"), "azure_openai needs api_version"),
    ],
    ids=["bad-enum", "bad-number", "unknown-field", "dangling-reference", "bad-yaml", "not-a-mapping", "azure"],
)
def test_invalid_config_names_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="<t>")
    assert expected in str(caught.value)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_default_is_simulated_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    config = load_default_config()
    assert {m.name for m in config.models} == {"sim-fast", "sim-smart", "sim-embed"}
    assert all(p.type is ProviderType.SIMULATED for p in config.providers)
    fast, smart = (next(m for m in config.models if m.name == n) for n in ("sim-fast", "sim-smart"))
    assert fast.output_cost_per_mtok < smart.output_cost_per_mtok
    fast_sim = config.provider(fast.provider).simulation
    smart_sim = config.provider(smart.provider).simulation
    assert fast_sim.time_to_first_token_ms < smart_sim.time_to_first_token_ms


def test_default_adds_real_providers_whose_keys_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    config = load_default_config()
    assert [p.type for p in config.providers if p.type is not ProviderType.SIMULATED] == [ProviderType.ANTHROPIC]
    assert "claude-haiku" in {m.name for m in config.models}
    assert "sk-ant-test" not in repr(config)


def test_held_calls_and_provider_batches_are_configured_under_their_packages_names() -> None:
    """`deferral:` (calls held seconds, gateway/deferral) and `batches:` (provider batch files, gateway/batches) are
    two sections no reader takes for one another; the old `batching:` was never released and is refused."""
    config = parse_config(VALID + "deferral: {max_wait_s: 5, max_batch: 8}\nbatches: {max_items: 10}\n", source="<t>")
    assert (config.deferral.max_wait_s, config.deferral.max_batch) == (5.0, 8)
    assert config.batches.max_items == 10
    with pytest.raises(ConfigError, match="batching"):
        parse_config(VALID + "batching: {max_batch: 8}\n", source="<t>")
