"""A typed gRPC gateway to every LLM provider, with a Rust hot path (`gateway._core`)."""

from gateway._core import __version__

__all__ = ["__version__"]
