"""Authentication: same answer for unknown and wrong keys, failures limited per address, per-key rate limits."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import grpc
import pytest

from gateway.errors import RateLimited, Unauthenticated
from gateway.policy import keyring
from gateway.policy.keyring import FailurePolicy, KeyRing, grpc_peer, peer_host
from gateway.policy.keys import hash_key, new_key
from gateway.records.governance import KeyRecord
from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import StartGateway

KEY = "gw-" + "a" * 43


def ring(clock: list[float], per_minute: float = 6.0, burst: float = 3.0) -> KeyRing:
    keys = KeyRing(FailurePolicy(per_minute, burst), clock=lambda: clock[0])
    keys.put(KeyRecord(id="key_1", prefix="gw-aaa", secret_hash=hash_key(KEY), team="alpha"))
    return keys


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_unknown_wrong_and_missing_keys_get_the_same_answer() -> None:
    keys = ring([0.0], per_minute=1e6, burst=1e6)
    messages = set()
    for metadata in (auth("gw-unknown"), auth(KEY[:-1] + "b"), auth(""), [], [("authorization", KEY)]):
        with pytest.raises(Unauthenticated) as caught:
            keys.authenticate(metadata, "ipv4:10.0.0.1:5000")
        messages.add((caught.value.message, caught.value.reason))
    assert len(messages) == 1
    assert keys.authenticate(auth(KEY), "ipv4:10.0.0.1:5000").id == "key_1"


def test_unknown_and_wrong_keys_cost_the_same_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown key and a wrong secret behind a real key's prefix are each hashed once, whole, and looked up by
    that hash: nothing compares them with stored keys character by character, which would take longer the more
    characters match. Their times, side by side, are in benches/policy/bench_admission.py."""
    keys = ring([0.0], per_minute=1e9, burst=1e9)
    hashed: list[str] = []

    def counting_hash(token: str) -> str:
        hashed.append(token)
        return hash_key(token)

    monkeypatch.setattr(keyring, "hash_key", counting_hash)
    for token in ("gw-" + "z" * 43, KEY[:-1] + "b", KEY):
        hashed.clear()
        with contextlib.suppress(Unauthenticated):
            keys.authenticate(auth(token), "ipv4:10.0.0.1:1")
        assert hashed == [token]


def test_an_address_that_keeps_failing_is_refused_then_let_back() -> None:
    clock = [1000.0]
    keys = ring(clock)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            keys.authenticate(auth("gw-guess"), "ipv4:10.0.0.9:4000")
    with pytest.raises(Unauthenticated):
        keys.authenticate(auth("gw-guess"), "ipv4:10.0.0.9:4001")  # over the burst: this one blocks the address
    with pytest.raises(RateLimited) as caught:
        keys.authenticate(auth(KEY), "ipv4:10.0.0.9:4002")  # even a valid key, from that address
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 0
    assert keys.authenticate(auth(KEY), "ipv4:10.0.0.10:4000").id == "key_1"  # other addresses are unaffected
    clock[0] += caught.value.retry_after + 0.01
    assert keys.authenticate(auth(KEY), "ipv4:10.0.0.9:4003").id == "key_1"


def test_a_rotated_keys_old_secret_works_until_its_grace_ends_and_a_replaced_key_drops_its_old_hashes() -> None:
    clock = [1000.0]
    keys = KeyRing(clock=lambda: clock[0])
    old, new, newer = "gw-" + "o" * 43, "gw-" + "n" * 43, "gw-" + "w" * 43
    first = KeyRecord(id="key_1", prefix="gw-ooo", secret_hash=hash_key(old), team="alpha")
    keys.put(first)
    keys.put(KeyRecord(id="key_2", prefix="gw-xxx", secret_hash=hash_key("gw-other"), team="alpha"))
    rotated = dataclasses.replace(
        first, secret_hash=hash_key(new), previous_hash=hash_key(old), previous_valid_until=1060.0
    )
    keys.put(rotated)
    assert len(keys) == 2
    assert keys.get("key_1") == rotated
    assert keys.authenticate(auth(old)) == rotated
    assert keys.authenticate(auth(new)) == rotated
    clock[0] = 1060.0  # the grace period's end: the old secret stops
    with pytest.raises(Unauthenticated):
        keys.authenticate(auth(old))
    clock[0] = 1000.0
    keys.put(dataclasses.replace(rotated, secret_hash=hash_key(newer), previous_hash=None, previous_valid_until=None))
    for gone in (old, new):  # replaced: both hashes of the record before stop at once
        with pytest.raises(Unauthenticated):
            keys.authenticate(auth(gone))
    assert keys.authenticate(auth(newer)).id == "key_1"
    keys.remove("key_1")
    keys.remove("key_unknown")
    assert keys.get("key_1") is None
    assert len(keys) == 1
    with pytest.raises(Unauthenticated):
        keys.authenticate(auth(newer))
    assert keys.authenticate(auth("gw-other")).id == "key_2"


def test_a_previous_hash_without_an_end_is_not_accepted() -> None:
    """A rotated key's old secret works only until its grace period ends: a record that names no end gives the old
    secret no grace at all, never an unbounded one."""
    old = "gw-" + "o" * 43
    keys = KeyRing(clock=lambda: 1000.0)
    keys.put(
        KeyRecord(id="key_1", prefix="gw-aaa", secret_hash=hash_key(KEY), team="alpha", previous_hash=hash_key(old))
    )
    with pytest.raises(Unauthenticated):
        keys.authenticate(auth(old), "ipv4:10.0.0.1:1")
    assert keys.authenticate(auth(KEY), "ipv4:10.0.0.1:1").id == "key_1"
    keys.remove("key_1")  # removing it drops the previous hash too, whether or not it was held
    assert len(keys) == 0


def test_revoked_and_expired_keys_are_refused_with_their_reason_from_the_moment_they_end() -> None:
    clock = [1000.0]
    keys = KeyRing(clock=lambda: clock[0])
    record = KeyRecord(id="key_1", prefix="gw-aaa", secret_hash=hash_key(KEY), team="alpha", expires_at=1100.0)
    keys.put(record)
    clock[0] = 1099.9
    assert keys.authenticate(auth(KEY)) == record
    clock[0] = 1100.0
    with pytest.raises(Unauthenticated) as expired:
        keys.authenticate(auth(KEY))
    assert expired.value.reason == "KEY_EXPIRED"
    assert expired.value.message == "key key_1 has expired; ask your team admin for a new one"
    keys.put(dataclasses.replace(record, expires_at=None, revoked_at=999.0))
    with pytest.raises(Unauthenticated) as revoked:
        keys.authenticate(auth(KEY))
    assert revoked.value.reason == "KEY_REVOKED"
    assert revoked.value.message == "key key_1 was revoked; ask your team admin for a new one"


def test_the_authorization_header_is_read_as_a_bearer_token_of_any_case() -> None:
    keys = ring([0.0], per_minute=1e6, burst=1e6)
    for metadata in (
        [("x-other", "v"), ("authorization", f"bearer {KEY}")],
        [("authorization", f"BEARER   {KEY}  ")],
    ):
        assert keys.authenticate(metadata).id == "key_1"
    for metadata in (
        [("authorization", KEY.encode())],  # binary metadata is not a header a client sends a key in
        [("authorization", f"Basic {KEY}")],
        [("authorization", "Bearer    ")],
        [("authorization", f"Bearer{KEY}")],
        None,
    ):
        with pytest.raises(Unauthenticated) as caught:
            keys.authenticate(metadata)
        assert caught.value.message == (
            "missing or invalid gateway key: send metadata 'authorization: Bearer <gateway key>'"
        )


def test_new_keys_are_prefixed_random_and_hashed_with_sha256() -> None:
    made = {new_key() for _ in range(3)}
    assert len(made) == 3
    for key in made:
        assert key.startswith("gw-")
        assert len(key) == 3 + 43  # 32 random bytes, URL-safe base64
    assert hash_key("gw-x") == hashlib.sha256(b"gw-x").hexdigest()


def test_failures_are_reported_and_a_block_names_the_address_and_the_wait() -> None:
    clock = [1000.0]
    keys = ring(clock, per_minute=60.0, burst=2.0)
    assert keys.failures == FailurePolicy(60.0, 2.0)
    reported: list[str] = []
    keys.report_failures_to(reported.append)
    for port in (1, 2):
        with pytest.raises(Unauthenticated):
            keys.authenticate(auth("gw-guess"), f"ipv4:10.0.0.9:{port}")
    assert reported == ["10.0.0.9", "10.0.0.9"]
    keys.authenticate(auth(KEY), "ipv4:10.0.0.9:3")  # within the burst: not blocked yet
    with pytest.raises(Unauthenticated):
        keys.authenticate(auth("gw-guess"), "ipv4:10.0.0.9:4")  # over it: blocked for at least a second
    with pytest.raises(RateLimited) as caught:
        keys.authenticate(auth(KEY), "ipv4:10.0.0.9:5")
    assert caught.value.reason == "AUTH_FAILURES"
    assert caught.value.retry_after == pytest.approx(1.0)
    assert caught.value.message == "too many failed authentications from 10.0.0.9; try again in 1 s"

    keys.block("10.0.0.7", 30.0)  # another process saw it fail too often
    keys.block("10.0.0.7", 5.0)  # a shorter block never shortens a longer one
    clock[0] += 29.0
    with pytest.raises(RateLimited) as blocked:
        keys.authenticate(auth(KEY), "ipv4:10.0.0.7:2")
    assert blocked.value.retry_after == pytest.approx(1.0)
    clock[0] += 1.0
    assert keys.authenticate(auth(KEY), "ipv4:10.0.0.7:1").id == "key_1"


@pytest.mark.parametrize(
    ("peer", "host"),
    [("ipv4:10.1.2.3:5000", "10.1.2.3"), ("ipv6:[::1]:5000", "::1"), ("unix:/tmp/s", "unix:/tmp/s")],
)
def test_peer_host(peer: str, host: str) -> None:
    assert peer_host(peer) == host


@pytest.mark.parametrize(
    ("host", "peer"),
    [("10.1.2.3", "ipv4:10.1.2.3:443"), ("::1", "ipv6:[::1]:443"), ("2001:db8::7", "ipv6:[2001:db8::7]:443")],
)
def test_an_http_callers_address_is_written_as_grpc_writes_a_peer(host: str, peer: str) -> None:
    """The HTTP door and the console write a socket's address as gRPC does (the audit record's peer reads alike
    whichever door a call came through), and failed sign-ins from one host count together."""
    assert grpc_peer(host, 443) == peer
    assert peer_host(peer) == host


async def test_failed_authentications_are_limited_per_address_over_grpc(start_gateway: StartGateway) -> None:
    _, channel = await start_gateway(
        "providers: [{name: sim, type: simulated}]\nmodels: [{name: fast, provider: sim}]\n"
        "auth: {failures_per_minute: 1, failure_burst: 5}\n"
    )
    admin = Admin.on(channel)
    codes = []
    for _ in range(8):
        try:
            await admin.gateway.Chat(chat_request(), metadata=bearer("gw-guess"))
        except grpc.aio.AioRpcError as err:
            codes.append(err.code())
    assert codes[:5] == [grpc.StatusCode.UNAUTHENTICATED] * 5
    assert codes[-1] is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_key_rate_limits_refuse_with_retry_info(start_gateway: StartGateway) -> None:
    _, channel = await start_gateway()
    admin = Admin.on(channel)
    secret, _ = await admin.key(rpm=3)
    for _ in range(3):
        await admin.gateway.Chat(chat_request(), metadata=bearer(secret))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(chat_request(), metadata=bearer(secret))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "KEY_RATE_LIMITED"
    other, _ = await admin.key(rpm=3)
    await admin.gateway.Chat(chat_request(), metadata=bearer(other))  # limits are per key


async def test_key_concurrency_limit(start_gateway: StartGateway) -> None:
    import asyncio

    _, channel = await start_gateway()
    admin = Admin.on(channel)
    secret, _ = await admin.key(max_concurrent=2)
    calls = [admin.gateway.Chat(chat_request("slow"), metadata=bearer(secret), timeout=10) for _ in range(4)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 2
    assert {reason_of(r) for r in refused} == {"KEY_CONCURRENCY_LIMITED"}
    await admin.gateway.Chat(chat_request(), metadata=bearer(secret))  # slots are freed when calls end


async def test_key_token_limit_counts_prompt_and_answer(start_gateway: StartGateway) -> None:
    _, channel = await start_gateway()
    admin = Admin.on(channel)
    secret, _ = await admin.key(tpm=120)
    await admin.gateway.Chat(chat_request(max_tokens=40), metadata=bearer(secret))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(chat_request(text="word " * 60, max_tokens=90), metadata=bearer(secret))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason_of(caught.value) == "KEY_RATE_LIMITED"
