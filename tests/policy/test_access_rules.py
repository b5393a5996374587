"""The access rules as functions, with fixed instants: the edges of an hours window (its first and last minute, one
wrapping past midnight), weekdays in the key's zone, networks of both families, required metadata, the
classification ceiling, who manages which team, and how conditions are parsed when a key is issued.

test_access.py holds the same rules through the admin and gateway APIs; these reach the edges a call made now
reaches only by chance."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.errors import PermissionDenied
from gateway.policy.access import (
    check_admin,
    check_conditions,
    check_manages,
    check_model,
    check_timezone,
    format_hours,
    parse_hours,
    parse_weekdays,
)
from gateway.records.classification import Classification
from gateway.records.governance import Conditions, KeyRecord, Role

KEY = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop")


def at(text: str, zone: str = "UTC") -> float:
    """'2025-03-10 09:00' in `zone` (a Monday)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def check(
    conditions: Conditions,
    *,
    now: float,
    peer: str = "ipv4:10.0.0.1:5000",
    metadata: dict[str, str] | None = None,
    classification: Classification = Classification.PUBLIC,
) -> None:
    key = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop", conditions=conditions)
    check_conditions(key, peer=peer, metadata=metadata or {}, classification=classification, now=now)


def denied(conditions: Conditions, **call: object) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        check(conditions, **call)  # type: ignore[arg-type]
    return caught.value


MONDAY_NOON = at("2025-03-10 12:00")


def test_an_hours_window_includes_its_first_minute_and_excludes_its_end() -> None:
    office = Conditions(hours=(9 * 60, 18 * 60))
    check(office, now=at("2025-03-10 09:00"))
    check(office, now=at("2025-03-10 17:59"))
    before = denied(office, now=at("2025-03-10 08:59"))
    assert before.reason == "OUTSIDE_ALLOWED_TIME"
    assert before.message == "key key_1 may be used 09:00-18:00 (UTC); it is 08:59 there"
    assert denied(office, now=at("2025-03-10 18:00")).message.endswith("it is 18:00 there")


def test_an_hours_window_ending_before_it_starts_wraps_past_midnight() -> None:
    night = Conditions(hours=(22 * 60, 6 * 60))
    for inside in ("2025-03-10 22:00", "2025-03-10 23:59", "2025-03-10 00:00", "2025-03-10 05:59"):
        check(night, now=at(inside))
    for outside in ("2025-03-10 21:59", "2025-03-10 06:00", "2025-03-10 12:00"):
        assert denied(night, now=at(outside)).reason == "OUTSIDE_ALLOWED_TIME"


def test_an_hours_window_of_no_length_allows_no_minute() -> None:
    never = Conditions(hours=(9 * 60, 9 * 60))
    for moment in ("2025-03-10 09:00", "2025-03-10 08:59", "2025-03-10 21:00"):
        assert denied(never, now=at(moment)).reason == "OUTSIDE_ALLOWED_TIME"


def test_hours_and_weekdays_are_read_in_the_keys_time_zone() -> None:
    paris = Conditions(hours=(9 * 60, 10 * 60), weekdays=frozenset({0}), timezone="Europe/Paris")
    check(paris, now=at("2025-03-10 09:30", "Europe/Paris"))  # 08:30 UTC
    refusal = denied(paris, now=at("2025-03-10 09:30"))  # 10:30 in Paris
    assert refusal.message == "key key_1 may be used 09:00-10:00 (Europe/Paris); it is 10:30 there"
    sunday_night_in_utc = at("2025-03-09 23:30")  # already Monday 00:30 in Paris, outside the hours
    assert "it is 00:30 there" in denied(paris, now=sunday_night_in_utc).message


def test_weekdays_name_the_allowed_days_and_today() -> None:
    weekend = Conditions(weekdays=frozenset({6, 5}))
    check(weekend, now=at("2025-03-15 12:00"))  # a Saturday
    check(weekend, now=at("2025-03-16 23:59"))  # a Sunday
    refusal = denied(weekend, now=MONDAY_NOON)
    assert refusal.reason == "OUTSIDE_ALLOWED_TIME"
    assert refusal.message == "key key_1 may be used on sat, sun (UTC); it is mon there"


def test_networks_admit_addresses_inside_them_of_either_family() -> None:
    office = Conditions(networks=(ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8::/32")))
    check(office, now=MONDAY_NOON, peer="ipv4:10.0.0.255:1")
    check(office, now=MONDAY_NOON, peer="ipv6:[2001:db8::7]:443")
    outside = denied(office, now=MONDAY_NOON, peer="ipv4:10.0.1.1:5000")
    assert outside.reason == "NETWORK_NOT_ALLOWED"
    assert outside.message == "key key_1 may be used from 10.0.0.0/24, 2001:db8::/32, not from 10.0.1.1"
    unix = denied(office, now=MONDAY_NOON, peer="unix:/tmp/gateway.sock")  # no address: never inside
    assert unix.message.endswith("not from unix:/tmp/gateway.sock")


def test_required_metadata_must_be_present_and_among_its_allowed_values() -> None:
    conditions = Conditions(required_metadata=(("project", ("apollo", "gemini")), ("ticket", ())))
    check(conditions, now=MONDAY_NOON, metadata={"project": "gemini", "ticket": "T-1"})
    missing = denied(conditions, now=MONDAY_NOON, metadata={"ticket": "T-1"})
    assert missing.reason == "METADATA_REQUIRED"
    assert missing.message == "key key_1 requires request metadata 'project' (one of: apollo, gemini)"
    assert missing.metadata == {"metadata": "project"}
    empty = denied(conditions, now=MONDAY_NOON, metadata={"project": "apollo", "ticket": ""})
    assert empty.message == "key key_1 requires request metadata 'ticket'"
    other = denied(conditions, now=MONDAY_NOON, metadata={"project": "mercury", "ticket": "T-1"})
    assert other.reason == "METADATA_NOT_ALLOWED"
    assert other.message == "key key_1 does not allow project='mercury'; allowed: apollo, gemini"
    assert other.metadata == {"metadata": "project"}


def test_data_up_to_the_keys_classification_passes_and_above_it_is_denied() -> None:
    internal = Conditions(max_classification=Classification.INTERNAL)
    check(internal, now=MONDAY_NOON, classification=Classification.INTERNAL)
    refusal = denied(internal, now=MONDAY_NOON, classification=Classification.CONFIDENTIAL)
    assert refusal.reason == "CLASSIFICATION_NOT_ALLOWED"
    assert refusal.message == "key key_1 may send data up to internal, and this request is confidential"
    assert refusal.metadata == {"classification": "confidential", "allowed": "internal"}


def test_a_key_calls_only_its_models() -> None:
    limited = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop", models=frozenset({"fast"}))
    check_model(limited, "fast")
    check_model(KEY, "anything")  # no list: every model
    with pytest.raises(PermissionDenied) as caught:
        check_model(limited, "smart")
    assert caught.value.reason == "MODEL_NOT_ALLOWED"
    assert caught.value.message == "key key_1 may not call 'smart'; ask your team admin to add it to the key's models"
    assert caught.value.metadata == {"model": "smart"}


@pytest.mark.parametrize(
    ("role", "team", "reason"),
    [
        (Role.ADMIN, "other", None),
        (Role.TEAM_ADMIN, "shop", None),
        (Role.TEAM_ADMIN, "other", "OTHER_TEAM"),
        (Role.MEMBER, "shop", "ADMIN_REQUIRED"),
    ],
)
def test_admins_manage_every_team_team_admins_their_own_members_none(role: Role, team: str, reason: str | None) -> None:
    caller = KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop", role=role)
    if reason is None:
        check_manages(caller, team)
        return
    with pytest.raises(PermissionDenied) as caught:
        check_manages(caller, team)
    assert caught.value.reason == reason
    expected = (
        "key key_1 is a team admin of 'shop', not of 'other'"
        if reason == "OTHER_TEAM"
        else "key key_1 is not an admin key"
    )
    assert caught.value.message == expected


@pytest.mark.parametrize("role", [Role.TEAM_ADMIN, Role.MEMBER])
def test_only_admins_pass_the_admin_check(role: Role) -> None:
    check_admin(KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop", role=Role.ADMIN))
    with pytest.raises(PermissionDenied) as caught:
        check_admin(KeyRecord(id="key_1", prefix="gw-abc", secret_hash="h", team="shop", role=role))
    assert caught.value.reason == "ADMIN_REQUIRED"
    assert caught.value.message == "key key_1 is not an admin key"


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("09:00-18:00", (540, 1080)), (" 22:30 - 6 ", (1350, 360)), ("00:00-24:00", (0, 1440)), ("7-8:05", (420, 485))],
)
def test_hours_parse_to_minutes_and_format_back(text: str, minutes: tuple[int, int]) -> None:
    assert parse_hours(text) == minutes
    assert parse_hours(format_hours(minutes)) == minutes
    assert format_hours((540, 1085)) == "09:00-18:05"


@pytest.mark.parametrize("text", ["09:00", "09:00-18:00-20:00", "9am-5pm", "00:00-24:01", "-1:00-02:00", ""])
def test_bad_hours_say_what_they_should_look_like(text: str) -> None:
    with pytest.raises(ValueError, match=r"hours must look like 09:00-18:00, got "):
        parse_hours(text)


def test_weekdays_parse_from_names_of_any_case_and_length() -> None:
    assert parse_weekdays(["Monday", "tue", " SUN "]) == frozenset({0, 1, 6})
    assert parse_weekdays([]) == frozenset()
    with pytest.raises(ValueError, match=r"unknown weekday 'funday'; use mon, tue, wed, thu, fri, sat, sun"):
        parse_weekdays(["mon", "funday"])


def test_time_zones_are_iana_names() -> None:
    assert check_timezone("Europe/Paris") == "Europe/Paris"
    for bad in ("Mars/Olympus", "../etc"):
        with pytest.raises(ValueError, match=r"unknown time zone .*; use an IANA name such as Europe/Paris"):
            check_timezone(bad)
