"""Console sessions: a cookie holding the key id, a CSRF token and the time of the last request, signed with HMAC
SHA-256. Nothing is kept server-side, so any worker or instance holding the same secret honours a session; the key is
looked up again on every request, so a revoked key or one whose role was lowered ends its sessions at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

SECRET_FILE = "console-secret"
"""Under the state folder: the signing secret generated once when `console.secret_env` is unset."""
_SECRET_BYTES = 32
_WRITE_WAIT_S = 2.0
"""How long a worker waits for the secret another worker is writing before it calls the file broken."""


class SecretMissing(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    csrf: str
    seen_at: float


def load_secret(secret_env: str | None, state_dir: Path) -> bytes:
    """The env variable `secret_env` names (every instance sets the same), else the state folder's file, created
    once with O_EXCL: the workers of one machine race to make it and all read the winner's."""
    if secret_env:
        value = os.environ.get(secret_env, "")
        if len(value) < 16:
            raise SecretMissing(f"console.secret_env names {secret_env}, which must hold at least 16 characters")
        return value.encode()
    path = state_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(_SECRET_BYTES))
    # Another worker may be between its create and its write, and a loaded machine can hold it there for many
    # milliseconds: wait for the write, a little at a time (start-up only, before anything is served).
    deadline = time.monotonic() + _WRITE_WAIT_S
    while True:
        secret = path.read_bytes()
        if len(secret) == _SECRET_BYTES:
            return secret
        if time.monotonic() >= deadline:
            raise SecretMissing(f"{path} is not a console secret; delete it and restart to make a new one")
        time.sleep(0.01)


class SessionSigner:
    def __init__(self, secret: bytes, idle_s: float) -> None:
        self._secret = secret
        self._idle_s = idle_s

    def new(self, key_id: str, now: float) -> Session:
        return Session(key_id, secrets.token_urlsafe(24), now)

    def dump(self, session: Session) -> str:
        payload = base64.urlsafe_b64encode(orjson.dumps([session.key_id, session.csrf, session.seen_at])).decode()
        return f"{payload}.{self._sign(payload)}"

    def load(self, cookie: str, now: float) -> Session | None:
        """The session the cookie carries, or None when it is forged, malformed or idle past `session_idle_s`."""
        payload, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            key_id, csrf, seen_at = orjson.loads(base64.urlsafe_b64decode(payload))
            session = Session(str(key_id), str(csrf), float(seen_at))
        except (ValueError, TypeError):
            return None
        if now - session.seen_at > self._idle_s:
            return None
        return session

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
