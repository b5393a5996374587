"""Configuration: the YAML schema, its loader (errors name the line and field), and the embedded default."""

from gateway.config.loader import ConfigError, load_config, load_default_config
from gateway.config.schema import GatewayConfig, KeyConfig, ModelConfig, ProviderConfig, ProviderType, ServerConfig

__all__ = [
    "ConfigError",
    "GatewayConfig",
    "KeyConfig",
    "ModelConfig",
    "ProviderConfig",
    "ProviderType",
    "ServerConfig",
    "load_config",
    "load_default_config",
]
