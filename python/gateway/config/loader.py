"""Loads YAML into a GatewayConfig. Errors name the file, line and field, so an operator can fix them at once."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.schema import GatewayConfig

Location = tuple[str | int, ...]


class ConfigError(Exception):
    """The config file is unreadable or invalid; the message lists every problem with its line."""


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config: {err.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str = "<config>") -> GatewayConfig:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping with providers: and models:")
    return validate_config(data, lines=_line_index(node) if node is not None else {}, source=source)


# Models that the embedded default adds when their provider's key variable is set: (env, provider, models).
_REAL_PROVIDERS: tuple[tuple[str, dict[str, Any], list[dict[str, Any]]], ...] = (
    (
        "OPENAI_API_KEY",
        {"name": "openai", "type": "openai", "api_key_env": "OPENAI_API_KEY"},
        [
            {
                "name": "gpt-4o-mini",
                "input_cost_per_mtok": 0.15,
                "output_cost_per_mtok": 0.60,
                "cached_input_cost_per_mtok": 0.075,
                "context_window": 128000,
                "max_output_tokens": 16384,
                "capabilities": ["streaming", "tools", "images", "json_mode"],
            },
            {
                "name": "gpt-4o",
                "input_cost_per_mtok": 2.50,
                "output_cost_per_mtok": 10.0,
                "cached_input_cost_per_mtok": 1.25,
                "context_window": 128000,
                "max_output_tokens": 16384,
                "capabilities": ["streaming", "tools", "images", "json_mode"],
            },
            {
                "name": "text-embedding-3-small",
                "kind": "embedding",
                "dimensions": 1536,
                "input_cost_per_mtok": 0.02,
            },
        ],
    ),
    (
        "ANTHROPIC_API_KEY",
        {"name": "anthropic", "type": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        [
            {
                "name": "claude-haiku",
                "upstream_model": "claude-3-5-haiku-latest",
                "input_cost_per_mtok": 0.80,
                "output_cost_per_mtok": 4.0,
                "cached_input_cost_per_mtok": 0.08,
                "context_window": 200000,
                "max_output_tokens": 8192,
                "capabilities": ["streaming", "tools", "images"],
            },
            {
                "name": "claude-sonnet",
                "upstream_model": "claude-sonnet-4-5",
                "input_cost_per_mtok": 3.0,
                "output_cost_per_mtok": 15.0,
                "cached_input_cost_per_mtok": 0.30,
                "context_window": 200000,
                "max_output_tokens": 8192,
                "capabilities": ["streaming", "tools", "images"],
            },
        ],
    ),
    (
        "GEMINI_API_KEY",
        {"name": "gemini", "type": "gemini", "api_key_env": "GEMINI_API_KEY"},
        [
            {
                "name": "gemini-flash",
                "upstream_model": "gemini-2.0-flash",
                "input_cost_per_mtok": 0.10,
                "output_cost_per_mtok": 0.40,
                "context_window": 1048576,
                "max_output_tokens": 8192,
                "capabilities": ["streaming", "tools", "images", "json_mode"],
            },
            {
                "name": "gemini-embedding",
                "upstream_model": "gemini-embedding-001",
                "kind": "embedding",
                "dimensions": 3072,
                "input_cost_per_mtok": 0.15,
            },
        ],
    ),
)


def load_default_config() -> GatewayConfig:
    """The embedded default: two simulated models of different speed and price, plus every real provider whose
    API key variable is set in the environment."""
    text = resources.files("gateway.config").joinpath("default.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    for env, provider, models in _REAL_PROVIDERS:
        if os.environ.get(env):
            data["providers"].append(provider)
            data["models"].extend({**model, "provider": provider["name"]} for model in models)
    return validate_config(data, lines={}, source="<embedded default>")


def validate_config(data: dict[str, Any], *, lines: dict[Location, int], source: str) -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as err:
        problems = [_describe(error["loc"], error["msg"], lines, source) for error in err.errors()]
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None


def _describe(loc: Location, msg: str, lines: dict[Location, int], source: str) -> str:
    # Drop pydantic's validator-kind segments (e.g. "function-after[...]") that are not part of the YAML path.
    path = tuple(part for part in loc if isinstance(part, int) or "[" not in part)
    line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
    where = f"{source}:{line}" if line is not None else source
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".") or "(top level)"
    return f"{where}: {field}: {msg.removeprefix('Value error, ')}"


def _line_index(root: yaml.Node) -> dict[Location, int]:
    """Maps every YAML path (keys and list indexes) to its 1-based line."""
    lines: dict[Location, int] = {}

    def walk(node: yaml.Node, path: Location) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(root, ())
    return lines
