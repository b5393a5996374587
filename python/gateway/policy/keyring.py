"""Authentication: from a call's `authorization` metadata to the record of the key that made it.

Every key is held in memory by its hash, so a lookup is one dict access and never a database round trip. Unknown
and wrong keys get the same answer after the same work (one SHA-256 and one dict miss), so an answer reveals nothing
about which keys exist. Addresses that keep failing are refused for a while, whatever key they send next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.errors import RateLimited, Unauthenticated
from gateway.limits import LimitKeeper
from gateway.policy.keys import bearer_token, hash_key
from gateway.records.governance import KeyRecord

_UNAUTHENTICATED = "missing or invalid gateway key: send metadata 'authorization: Bearer <gateway key>'"


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How many failed authentications one client address may make before it is refused for a while."""

    per_minute: float = 30.0
    burst: float = 30.0


@dataclass(frozen=True, slots=True)
class _Entry:
    record: KeyRecord
    valid_until: float | None
    """For a rotated key's old secret: the end of its grace period."""


class KeyRing:
    def __init__(self, failures: FailurePolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self._by_hash: dict[str, _Entry] = {}
        self._by_id: dict[str, KeyRecord] = {}
        self._failures = failures or FailurePolicy()
        self._failure_limiter = LimitKeeper()
        self._blocked: dict[str, float] = {}
        self._clock = clock
        self._report: Callable[[str], None] | None = None

    @property
    def failures(self) -> FailurePolicy:
        return self._failures

    def report_failures_to(self, report: Callable[[str], None]) -> None:
        """Each failed authentication's address also goes to `report` (the shared count of every process), which
        calls `block` everywhere when the address is over its allowance."""
        self._report = report

    def block(self, host: str, seconds: float) -> None:
        """Refuses `host` for `seconds`: it failed too often here, or in another process."""
        until = self._clock() + seconds
        self._blocked[host] = max(until, self._blocked.get(host, until))

    def put(self, record: KeyRecord) -> None:
        """Adds or replaces a key (by id): its old hashes stop working at once."""
        self.remove(record.id)
        self._by_id[record.id] = record
        self._by_hash[record.secret_hash] = _Entry(record, None)
        if record.previous_hash is not None and record.previous_valid_until is not None:
            self._by_hash[record.previous_hash] = _Entry(record, record.previous_valid_until)

    def remove(self, key_id: str) -> None:
        old = self._by_id.pop(key_id, None)
        if old is not None:
            self._by_hash.pop(old.secret_hash, None)
            if old.previous_hash is not None:
                self._by_hash.pop(old.previous_hash, None)

    def get(self, key_id: str) -> KeyRecord | None:
        return self._by_id.get(key_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None, peer: str = "") -> KeyRecord:
        if self._blocked:
            self._check_not_blocked(peer_host(peer))
        token = None
        for name, value in metadata or ():
            if name == "authorization" and isinstance(value, str):
                token = bearer_token(value)
                break
        entry = self._by_hash.get(hash_key(token)) if token else None
        now = self._clock()
        if entry is None or (entry.valid_until is not None and now >= entry.valid_until):
            self._failed(peer_host(peer))
            raise Unauthenticated(_UNAUTHENTICATED)
        record = entry.record
        if record.revoked_at is not None:
            raise Unauthenticated(
                f"key {record.id} was revoked; ask your team admin for a new one", reason="KEY_REVOKED"
            )
        if record.expires_at is not None and now >= record.expires_at:
            raise Unauthenticated(
                f"key {record.id} has expired; ask your team admin for a new one", reason="KEY_EXPIRED"
            )
        return record

    def _failed(self, host: str) -> None:
        wait = self._failure_limiter.take_one(f"auth-failures:{host}", self._failures.per_minute, self._failures.burst)
        if wait > 0.0:
            self.block(host, max(wait, 1.0))
        if self._report is not None:
            self._report(host)

    def _check_not_blocked(self, host: str) -> None:
        until = self._blocked.get(host)
        if until is None:
            return
        remaining = until - self._clock()
        if remaining <= 0:
            del self._blocked[host]
            return
        raise RateLimited(
            f"too many failed authentications from {host}; try again in {remaining:.0f} s",
            reason="AUTH_FAILURES",
            retry_after=remaining,
        )


def grpc_peer(host: str, port: int) -> str:
    """A socket's address written as gRPC writes a peer, so an HTTP caller's failed sign-ins count as a gRPC
    caller's from the same host: ('10.0.0.1', 5000) -> 'ipv4:10.0.0.1:5000', ('::1', 5000) -> 'ipv6:[::1]:5000'."""
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string: 'ipv4:10.0.0.1:5000' -> '10.0.0.1', 'ipv6:[::1]:5000' -> '::1'."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer
