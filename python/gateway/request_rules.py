"""What every front door checks in a request, whatever its wire format (protobuf for gRPC, JSON for the OpenAI-
compatible HTTP door): each rule raises InvalidRequest naming the field to fix, with the field in `param`."""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.chat import CacheControl, CacheMode
from gateway.config.cache import MAX_TTL_S
from gateway.errors import InvalidRequest

MAX_STOP_SEQUENCES = 4
MAX_METADATA_ENTRIES = 32
MAX_EMBED_INPUTS = 100_000
"""Inputs one embedding call may carry (a provider takes a few thousand a request; the gateway splits them)."""
_NAMESPACE = re.compile(r"^[A-Za-z0-9._:/@-]{0,128}$")


def invalid(message: str, param: str, *, reason: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, reason=reason, metadata={"param": param})


def check_temperature(value: float, param: str = "temperature") -> float:
    if not 0.0 <= value <= 2.0:
        raise invalid(f"{param} {value:g} is out of range: use 0 to 2", param)
    return value


def check_top_p(value: float, param: str = "top_p") -> float:
    if not 0.0 < value <= 1.0:
        raise invalid(f"{param} {value:g} is out of range: use a value in (0, 1]", param)
    return value


def check_max_tokens(value: int, param: str = "max_tokens") -> int:
    if value < 1:
        raise invalid(f"{param} must be at least 1 (leave it unset for the model's default)", param)
    return value


def check_stop(stop: list[str], param: str = "stop") -> list[str]:
    if len(stop) > MAX_STOP_SEQUENCES or not all(stop):
        raise invalid(f"{param} takes 1 to {MAX_STOP_SEQUENCES} non-empty sequences", param)
    return stop


def check_metadata(metadata: Mapping[str, str], param: str = "metadata") -> dict[str, str]:
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise invalid(f"{param} has {len(metadata)} entries; at most {MAX_METADATA_ENTRIES} are allowed", param)
    for key, value in metadata.items():
        if not key or len(key) > 64 or len(value) > 256:
            raise invalid(f"{param} keys must be 1-64 chars and values at most 256 chars", param)
    return dict(metadata)


def cache_control(
    mode: CacheMode, ttl_s: int, namespace: str, allow_semantic: bool | None, *, param: str = "cache"
) -> CacheControl:
    if ttl_s > MAX_TTL_S:
        raise invalid(f"{param}.ttl_seconds {ttl_s} is over the limit of {MAX_TTL_S} (30 days)", param)
    if not _NAMESPACE.match(namespace):
        raise invalid(
            f"{param}.namespace takes up to 128 letters, digits and . _ : / @ -",
            f"{param}.namespace",
            reason="INVALID_CACHE_NAMESPACE",
        )
    return CacheControl(mode, ttl_s, namespace, allow_semantic)


def check_embed_inputs(inputs: list[str], param: str = "inputs") -> None:
    if not inputs:
        raise invalid(f"{param} is empty: send at least one text", param, reason="INPUTS_REQUIRED")
    if len(inputs) > MAX_EMBED_INPUTS:
        raise invalid(f"{param} has {len(inputs)} texts; at most {MAX_EMBED_INPUTS} a call", param)
    for index, text in enumerate(inputs):
        if not text:
            raise invalid(
                f"{param}[{index}] is empty: every text must have characters", f"{param}[{index}]", reason="EMPTY_INPUT"
            )


def check_size(chars: int, limit: int) -> None:
    """The gateway's bound on a request's total text (server.max_input_chars)."""
    if chars > limit:
        raise InvalidRequest(
            f"the input has {chars} characters, over the gateway's limit of {limit}", reason="INPUT_TOO_LARGE"
        )
