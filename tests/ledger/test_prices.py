"""Time-of-day prices: the config's windows, refused when they overlap, and the price in force at any moment."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gateway.config.schema import ModelConfig

UTC = dt.UTC


def at(text: str, zone: str = "UTC") -> float:
    """Epoch seconds of a local wall time, e.g. at('2026-03-08 01:59', 'America/New_York')."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def model(*windows: dict[str, object], cached: float | None = 0.5) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "m",
            "provider": "p",
            "input_cost_per_mtok": 4.0,
            "output_cost_per_mtok": 16.0,
            "cached_input_cost_per_mtok": cached,
            "prices": list(windows),
        }
    )


OFF_PEAK = {"hours": "16:30-00:30", "input_cost_per_mtok": 1.0, "output_cost_per_mtok": 4.0}


def test_a_window_that_wraps_midnight_applies_from_its_start_to_before_its_end() -> None:
    schedule = model(OFF_PEAK).schedule
    assert schedule.at(at("2026-06-01 16:29:59")).input_per_mtok == 4.0
    inside = schedule.at(at("2026-06-01 16:30"))
    assert (inside.input_per_mtok, inside.output_per_mtok, inside.window) == (1.0, 4.0, "16:30-00:30 UTC")
    assert inside.cached_input_per_mtok == 0.5  # unset in the window: the model's
    assert schedule.at(at("2026-06-01 23:59")).input_per_mtok == 1.0
    assert schedule.at(at("2026-06-02 00:29:59")).input_per_mtok == 1.0
    after = schedule.at(at("2026-06-02 00:30"))
    assert (after.input_per_mtok, after.window) == (4.0, "")


def test_the_price_follows_any_order_of_times_asked() -> None:
    """The schedule remembers the span its last answer holds for; going back in time must not reuse it."""
    schedule = model(OFF_PEAK).schedule
    times = ["2026-06-01 20:00", "2026-06-01 10:00", "2026-06-02 00:15", "2026-06-01 16:30", "2026-05-01 12:00"]
    assert [schedule.at(at(t)).input_per_mtok for t in times] == [1.0, 4.0, 1.0, 1.0, 4.0]


def test_a_timezone_window_follows_daylight_saving_time() -> None:
    """22:00-06:00 New York time is 03:00-11:00 UTC in winter (EST) and 02:00-10:00 UTC in summer (EDT)."""
    night = {"hours": "22:00-06:00", "timezone": "America/New_York", "input_cost_per_mtok": 2.0}
    schedule = model(night).schedule
    assert schedule.at(at("2026-01-15 02:30")).input_per_mtok == 4.0
    assert schedule.at(at("2026-01-15 03:00")).input_per_mtok == 2.0
    assert schedule.at(at("2026-07-15 02:30")).input_per_mtok == 2.0
    assert schedule.at(at("2026-07-15 10:00")).input_per_mtok == 4.0
    # Across the spring change (2026-03-08 02:00 EST -> 03:00 EDT), the window still ends at 06:00 local.
    assert schedule.at(at("2026-03-08 05:59", "America/New_York")).input_per_mtok == 2.0
    assert schedule.at(at("2026-03-08 06:00", "America/New_York")).input_per_mtok == 4.0


def test_windows_beside_each_other_apply_in_turn() -> None:
    schedule = model(
        {"hours": "00:00-08:00", "input_cost_per_mtok": 1.0}, {"hours": "08:00-12:00", "input_cost_per_mtok": 2.0}
    ).schedule
    assert [schedule.at(at(f"2026-06-01 {t}")).input_per_mtok for t in ("07:59", "08:00", "11:59", "12:00")] == [
        1.0,
        2.0,
        2.0,
        4.0,
    ]


def test_a_model_without_windows_has_its_prices_at_any_time() -> None:
    schedule = model().schedule
    assert not schedule.scheduled
    assert schedule.at(0.0) == schedule.at(at("2030-01-01 12:00")) == schedule.base


def test_the_ceiling_is_the_dearest_input_and_output_of_the_day() -> None:
    schedule = model({"hours": "01:00-02:00", "input_cost_per_mtok": 9.0, "output_cost_per_mtok": 1.0}).schedule
    ceiling = schedule.ceiling()
    assert (ceiling.input_per_mtok, ceiling.output_per_mtok) == (9.0, 16.0)


def test_the_next_cheaper_window_is_found_when_it_begins_within_the_wait() -> None:
    schedule = model(OFF_PEAK).schedule
    now = at("2026-06-01 16:00")
    assert schedule.next_cheaper(now, now + 3600, answer_share=0.5) == at("2026-06-01 16:30")
    assert schedule.next_cheaper(now, now + 600, answer_share=0.5) is None
    inside = at("2026-06-01 17:00")
    assert schedule.next_cheaper(inside, inside + 86_400, answer_share=0.5) is None  # nothing cheaper than now


def test_the_next_cheaper_window_may_begin_at_the_last_moment_of_the_wait() -> None:
    """`next_cheaper` looks in (now, until]: a window that begins just as the wait ends is still in it."""
    schedule = model(OFF_PEAK).schedule
    now = at("2026-06-01 16:00")
    assert schedule.next_cheaper(now, at("2026-06-01 16:30"), answer_share=0.5) == at("2026-06-01 16:30")


def test_a_window_begins_on_its_minute_whatever_the_fraction_of_the_second_last_asked() -> None:
    """The remembered span ends at the boundary itself, not at the boundary plus the last call's sub-second."""
    schedule = model(OFF_PEAK).schedule
    assert schedule.at(at("2026-06-01 16:00:00.500")).input_per_mtok == 4.0
    assert schedule.at(at("2026-06-01 16:30:00.250")).input_per_mtok == 1.0
    now = at("2026-06-01 16:00:00.750")
    assert schedule.next_cheaper(now, now + 3600, answer_share=0.5) == at("2026-06-01 16:30")


def test_a_new_schedule_works_out_its_first_answer_at_any_time() -> None:
    """Nothing is remembered before the first question, not even for the first second of 1970."""
    schedule = model({"hours": "23:00-01:00", "input_cost_per_mtok": 1.0}).schedule
    assert schedule.at(0.0).input_per_mtok == 1.0


def test_a_model_without_windows_is_never_cheaper_later() -> None:
    schedule = model().schedule
    now = at("2026-06-01 16:00")
    assert schedule.next_cheaper(now, now + 86_400, answer_share=0.5) is None
    assert schedule.at_uncached(now) == schedule.base


@pytest.mark.parametrize(("answer_share", "cheaper"), [(0.1, True), (0.125, False)])
def test_whether_a_window_is_cheaper_weighs_input_and_output_by_the_answers_share(
    answer_share: float, cheaper: bool
) -> None:
    """Input at 1 instead of 4, output at 40 instead of 16: cheaper only while answers are under 1/9 of the tokens
    (1 + 39 s < 4 + 12 s)."""
    schedule = model({"hours": "16:30-18:00", "input_cost_per_mtok": 1.0, "output_cost_per_mtok": 40.0}).schedule
    now = at("2026-06-01 16:00")
    found = schedule.next_cheaper(now, now + 3600, answer_share=answer_share)
    assert found == (at("2026-06-01 16:30") if cheaper else None)


def test_the_next_cheaper_window_in_the_hour_repeated_when_clocks_go_back() -> None:
    """New York, 2026-11-01: 02:00 EDT becomes 01:00 EST, so 01:00-02:00 happens twice. In the second 01:30 (06:30
    UTC) a window from 01:45 next begins at the second 01:45 (06:45 UTC), not at the first one, already past."""
    night = {"hours": "01:45-03:00", "timezone": "America/New_York", "input_cost_per_mtok": 1.0}
    schedule = model(night).schedule
    now = at("2026-11-01 06:30", "UTC")
    assert schedule.at(now).input_per_mtok == 4.0
    assert schedule.next_cheaper(now, now + 3600, answer_share=0.5) == at("2026-11-01 06:45", "UTC")
    # Asked a moment before, the schedule must not keep the old price past the window's start.
    assert schedule.at(at("2026-11-01 06:44:59.500", "UTC")).input_per_mtok == 4.0
    assert schedule.at(at("2026-11-01 06:45", "UTC")).input_per_mtok == 1.0
    later = at("2026-11-01 06:30:20", "UTC")
    assert schedule.next_cheaper(later, later + 3600, answer_share=0.5) == at("2026-11-01 06:45", "UTC")


@pytest.mark.parametrize(
    ("windows", "message"),
    [
        (
            [OFF_PEAK, {"hours": "00:00-02:00", "input_cost_per_mtok": 2.0}],
            "model 'm': prices: windows 16:30-00:30 and 00:00-02:00 (UTC) overlap from 00:00 to 00:30",
        ),
        (
            [{"hours": "09:00-17:00", "input_cost_per_mtok": 2.0}, {"hours": "12:00-13:00", "input_cost_per_mtok": 1}],
            "windows 09:00-17:00 and 12:00-13:00 (UTC) overlap from 12:00 to 13:00",
        ),
        (
            [OFF_PEAK, {"hours": "01:00-02:00", "timezone": "Europe/Paris", "input_cost_per_mtok": 2.0}],
            "windows in several timezones (Europe/Paris, UTC); give them all one timezone",
        ),
        ([{"hours": "9:00-17:00", "input_cost_per_mtok": 2.0}], "write HH:MM-HH:MM"),
        ([{"hours": "09:00-25:00", "input_cost_per_mtok": 2.0}], "25:00 is not a time of day"),
        ([{"hours": "09:00-09:00", "input_cost_per_mtok": 2.0}], "shorter than a day and longer than nothing"),
        ([{"hours": "09:00-10:00", "timezone": "Mars/Olympus", "input_cost_per_mtok": 2.0}], "not an IANA timezone"),
        ([{"hours": "09:00-10:00"}], "set at least one of the input, output and cached prices"),
    ],
)
def test_bad_windows_are_refused_at_load_with_what_to_fix(windows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model(*windows)


def test_a_deployment_with_its_own_prices_gets_its_own_schedule() -> None:
    """The catalog copies the model per deployment: a copy must not keep the model's schedule."""
    base = model(OFF_PEAK)
    assert base.schedule.at(at("2026-06-01 17:00")).input_per_mtok == 1.0
    copy = base.model_copy(update={"input_cost_per_mtok": 3.0, "prices": []})
    assert copy.schedule.at(at("2026-06-01 17:00")).input_per_mtok == 3.0
