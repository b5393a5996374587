"""Gateway keys: how they are made, hashed and parsed. A key is shown once; only its SHA-256 is ever stored."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "gw-"


def new_key() -> str:
    """A fresh key with 256 bits of randomness."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # A fast hash is right here: keys are 256-bit random, so no dictionary or brute-force attack applies, and
    # verification runs on every call.
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
