"""Authentication: from the call's `authorization` metadata to the identity of the key that made it.

Lookups are one dict access on a hash, never a database round trip. Unknown, malformed and wrong keys get the same
answer, so an answer reveals nothing about which keys exist.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.config.schema import KeyConfig
from gateway.errors import PermissionDenied, Unauthenticated
from gateway.policy.keys import bearer_token, hash_key, new_key

log = logging.getLogger("gateway.auth")

BOOTSTRAP_KEY_ENV = "GATEWAY_BOOTSTRAP_KEY"
BOOTSTRAP_HASH_FILE = "bootstrap_key.sha256"
_UNAUTHENTICATED = "missing or invalid gateway key: send metadata 'authorization: Bearer <gateway key>'"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling. Never holds the key itself."""

    key_id: str
    models: frozenset[str] | None = None
    """The models (and routes) this key may call; None means every one."""
    team: str = ""

    def may_call(self, model: str) -> bool:
        return self.models is None or model in self.models

    def check_model(self, model: str) -> None:
        if not self.may_call(model):
            raise PermissionDenied(
                f"key {self.key_id!r} may not call model {model!r}; ask an admin to add it to the key's models",
                reason="MODEL_NOT_ALLOWED",
                metadata={"model": model},
            )


class Authenticator:
    def __init__(self, identities: dict[str, Identity]) -> None:
        self._by_hash = identities

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Identity:
        for name, value in metadata or ():
            if name == "authorization" and isinstance(value, str):
                token = bearer_token(value)
                identity = self._by_hash.get(hash_key(token)) if token else None
                if identity is not None:
                    return identity
                break
        raise Unauthenticated(_UNAUTHENTICATED)


def build_authenticator(keys: list[KeyConfig], state_dir: Path) -> Authenticator:
    """Keys from the config and GATEWAY_BOOTSTRAP_KEY; with neither, a key generated on first start (see below)."""
    identities: dict[str, Identity] = {}
    for key in keys:
        digest = key.key_sha256
        if key.key_env is not None:
            value = os.environ.get(key.key_env)
            if not value:
                log.warning("key %r: environment variable %s is not set; the key is disabled", key.name, key.key_env)
                continue
            digest = hash_key(value)
        assert digest is not None
        identities[digest] = Identity(key.name, key.models, key.team)
    bootstrap = os.environ.get(BOOTSTRAP_KEY_ENV)
    if bootstrap:
        identities[hash_key(bootstrap)] = Identity("bootstrap")
    elif not identities:
        identities[_generated_bootstrap_hash(state_dir)] = Identity("bootstrap")
    return Authenticator(identities)


def _generated_bootstrap_hash(state_dir: Path) -> str:
    """On first start, makes a key, stores only its hash in the state folder and prints the key once."""
    path = state_dir / BOOTSTRAP_HASH_FILE
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = new_key()
    path.write_text(hash_key(key) + "\n", encoding="utf-8")
    path.chmod(0o600)
    # Printed, not logged: the one time the key is shown, on the operator's terminal rather than in log files.
    print(
        f"Generated a gateway key (shown only this once; its hash is in {path}):\n\n    {key}\n\n"
        f"Clients send it as 'authorization: Bearer <key>'; for the CLI: export GATEWAY_API_KEY=<key>",
        flush=True,
    )
    return hash_key(key)
