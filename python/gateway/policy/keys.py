"""Gateway keys: how they are made, hashed and parsed. A key is shown once; only its SHA-256 is ever stored."""

from __future__ import annotations

import secrets

from gateway import _core

KEY_PREFIX = "gw-"


def new_key() -> str:
    """A fresh key with 256 bits of randomness."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The key's SHA-256, as the store keeps it. Computed in the Rust core: OpenSSL 3's hashlib.sha256 looks its
    digest up on every call, 4.5-6.7 µs a call on the event loop in the gateway against 2 µs for the core's
    (benches/pipeline_cpu.py with per-stage timing, docs/benchmarks.md)."""
    return _core.key_digest(key)


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
