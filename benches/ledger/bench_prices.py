"""The price in force, read on every call (cost strategy, budget estimate, bill): a model with time-of-day windows
against one without, and against working the timezone out on every read (what the remembered span saves).

.venv/bin/pytest benches/ledger/bench_prices.py --benchmark-enable --benchmark-columns=min,median,max,ops
"""

from __future__ import annotations

import datetime as dt

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from gateway.config.schema import ModelConfig

NOW = dt.datetime(2026, 6, 1, 17, 0, tzinfo=dt.UTC).timestamp()


def model(*windows: dict[str, object]) -> ModelConfig:
    return ModelConfig.model_validate(
        {"name": "m", "provider": "p", "input_cost_per_mtok": 3.0, "output_cost_per_mtok": 15.0, "prices": windows}
    )


SCHEDULED = model(
    {"hours": "16:30-00:30", "timezone": "America/New_York", "input_cost_per_mtok": 1.5},
    {"hours": "08:00-12:00", "timezone": "America/New_York", "output_cost_per_mtok": 20.0},
)
PLAIN = model()


@pytest.mark.benchmark(group="price in force")
def test_reference_a_model_without_windows(benchmark: BenchmarkFixture) -> None:
    schedule = PLAIN.schedule
    assert benchmark(schedule.at, NOW).input_per_mtok == 3.0


@pytest.mark.benchmark(group="price in force")
def test_a_model_with_windows_inside_the_remembered_span(benchmark: BenchmarkFixture) -> None:
    schedule = SCHEDULED.schedule
    assert benchmark(schedule.at, NOW).input_per_mtok == 3.0  # 13:00 in New York: between the windows


@pytest.mark.benchmark(group="price in force")
def test_working_the_timezone_out_on_every_read(benchmark: BenchmarkFixture) -> None:
    schedule = SCHEDULED.schedule
    assert benchmark(schedule.at_uncached, NOW).input_per_mtok == 3.0
