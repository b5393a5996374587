"""Attribute conditions (ABAC) on keys, end to end: time windows, networks, required metadata, classification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from llmgateway.v1 import admin_pb2 as apb

from tests.admin.helpers import Admin, bearer, chat_request, reason_of
from tests.server.fixtures import StartGateway

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
async def admin(start_gateway: StartGateway) -> Admin:
    _, channel = await start_gateway()
    return Admin.on(channel)


async def refused(
    admin: Admin,
    secret: str,
    *,
    metadata: tuple[tuple[str, str], ...] = (),
    code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED,
) -> grpc.aio.AioRpcError:
    """The error of a call the key's conditions refuse, checked to carry `code`."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin.gateway.Chat(chat_request(), metadata=bearer(secret) + metadata)
    assert caught.value.code() is code
    return caught.value


def window(start: datetime, hours: float) -> str:
    end = start + timedelta(hours=hours)
    return f"{start:%H:%M}-{end:%H:%M}"


async def test_outside_the_allowed_hours_is_denied_with_the_window(admin: Admin) -> None:
    now = datetime.now(UTC)
    closed = window(now + timedelta(hours=2), 1)
    secret, _ = await admin.key(conditions=apb.Conditions(hours=closed, timezone="UTC"))
    err = await refused(admin, secret)
    assert err.code() is grpc.StatusCode.PERMISSION_DENIED
    assert reason_of(err) == "OUTSIDE_ALLOWED_TIME"
    assert closed in (err.details() or "")


async def test_inside_the_allowed_hours_in_another_time_zone_passes(admin: Admin) -> None:
    tokyo_now = datetime.now(UTC) + timedelta(hours=9)
    secret, _ = await admin.key(
        conditions=apb.Conditions(hours=window(tokyo_now - timedelta(minutes=30), 1), timezone="Asia/Tokyo")
    )
    await admin.gateway.Chat(chat_request(), metadata=bearer(secret))


async def test_weekdays_are_checked_in_the_key_time_zone(admin: Admin) -> None:
    today = WEEKDAYS[datetime.now(UTC).weekday()]
    others = [d for d in WEEKDAYS if d != today]
    secret, _ = await admin.key(conditions=apb.Conditions(weekdays=others))
    assert reason_of(await refused(admin, secret)) == "OUTSIDE_ALLOWED_TIME"
    allowed, _ = await admin.key(conditions=apb.Conditions(weekdays=[today]))
    await admin.gateway.Chat(chat_request(), metadata=bearer(allowed))


async def test_a_network_not_allowed_is_denied(admin: Admin) -> None:
    secret, _ = await admin.key(conditions=apb.Conditions(networks=["10.0.0.0/8", "192.168.0.0/16"]))
    err = await refused(admin, secret)
    assert reason_of(err) == "NETWORK_NOT_ALLOWED"
    assert "127.0.0.1" in (err.details() or "")
    loopback, _ = await admin.key(conditions=apb.Conditions(networks=["127.0.0.0/8"]))
    await admin.gateway.Chat(chat_request(), metadata=bearer(loopback))


async def test_required_metadata_must_be_present_with_an_allowed_value(admin: Admin) -> None:
    secret, _ = await admin.key(
        conditions=apb.Conditions(
            required_metadata=[
                apb.MetadataRequirement(name="x-app"),
                apb.MetadataRequirement(name="x-device-class", allowed_values=["server", "laptop"]),
            ]
        )
    )
    assert reason_of(await refused(admin, secret)) == "METADATA_REQUIRED"
    err = await refused(admin, secret, metadata=(("x-app", "billing"), ("x-device-class", "phone")))
    assert reason_of(err) == "METADATA_NOT_ALLOWED"
    await admin.gateway.Chat(
        chat_request(), metadata=(*bearer(secret), ("x-app", "billing"), ("x-device-class", "server"))
    )


async def test_data_above_the_key_classification_is_denied(admin: Admin) -> None:
    secret, _ = await admin.key(conditions=apb.Conditions(max_classification="internal"))
    await admin.gateway.Chat(chat_request(), metadata=(*bearer(secret), ("x-data-classification", "internal")))
    err = await refused(admin, secret, metadata=(("x-data-classification", "restricted"),))
    assert reason_of(err) == "CLASSIFICATION_NOT_ALLOWED"
    err = await refused(
        admin, secret, metadata=(("x-data-classification", "secret-ish"),), code=grpc.StatusCode.INVALID_ARGUMENT
    )
    assert reason_of(err) == "BAD_CLASSIFICATION"


async def test_a_key_label_raises_the_classification_floor(admin: Admin) -> None:
    secret, _ = await admin.key(
        labels={"classification": "confidential"}, conditions=apb.Conditions(max_classification="internal")
    )
    assert reason_of(await refused(admin, secret)) == "CLASSIFICATION_NOT_ALLOWED"


async def test_bad_conditions_are_rejected_when_the_key_is_issued(admin: Admin) -> None:
    await admin.team("alpha")
    for conditions in (
        apb.Conditions(hours="9 to 5"),
        apb.Conditions(weekdays=["funday"]),
        apb.Conditions(timezone="Mars/Olympus"),
        apb.Conditions(networks=["not-a-network"]),
        apb.Conditions(max_classification="top-secret"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.admin.CreateKey(
                apb.CreateKeyRequest(spec=apb.KeySpec(team="alpha", conditions=conditions)),
                metadata=(("authorization", "Bearer gw-test-key-0123456789"),),
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, conditions
