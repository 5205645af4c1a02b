"""Schedules: strict cron parsing, UTC ticks and the catch-up plan, with literals."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from taskpipes.schedule import (
    CatchupPlan,
    Schedule,
    ScheduleError,
    floor_tick,
    matches,
    parse_cron,
    parse_tick,
    plan_catchup,
    ticks_between,
)


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * * * *", "has 6 fields; expected 5"),
        ("*/10 * * *", "has 4 fields; expected 5"),
        ("61 * * * *", "minute 61 is outside 0-59"),
        ("* 24 * * *", "hour 24 is outside 0-23"),
        ("* * 0 * *", "day 0 is outside 1-31"),
        ("* * * 13 *", "month 13 is outside 1-12"),
        ("@fortnightly", "unknown cron alias '@fortnightly'"),
        ("a b c d e", "invalid cron string 'a b c d e'"),
    ],
)
def test_a_bad_cron_string_is_refused_with_the_reason(cron: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_cron(cron)


@pytest.mark.parametrize("cron", ["0 0 * * 0", "0 0 * * sun", "@weekly", "0 0 * * 7"])
def test_sunday_fires_however_it_is_written(cron: str) -> None:
    sunday = at(29, 0, 0)  # 2026-11-29 is a Sunday

    assert matches(parse_cron(cron), sunday)
    assert not matches(parse_cron(cron), sunday + timedelta(days=1))


def test_periods() -> None:
    assert Schedule("*/10 * * * *").period == timedelta(minutes=10)
    assert Schedule("*/15 * * * *").period == timedelta(minutes=15)
    assert Schedule("0 3 * * *").period == timedelta(days=1)


def test_floor_tick_and_ticks_between() -> None:
    spec = parse_cron("*/15 * * * *")

    assert floor_tick(spec, datetime(2026, 11, 26, 12, 44, 59, tzinfo=UTC)) == at(26, 12, 30)
    assert list(ticks_between(spec, at(26, 12, 0), timedelta(hours=1))) == [
        at(26, 12, 0), at(26, 12, 15), at(26, 12, 30), at(26, 12, 45),
    ]  # fmt: skip


def test_ticks_are_utc_across_a_dst_change() -> None:
    # Europe switched back on 2026-10-25 at 01:00 UTC; in UTC nothing is doubled or missing.
    spec = parse_cron("0 * * * *")
    ticks = list(ticks_between(spec, datetime(2026, 10, 24, 23, tzinfo=UTC), timedelta(hours=4)))

    assert [t.hour for t in ticks] == [23, 0, 1, 2]


def test_parse_tick_takes_zones_and_refuses_garbage() -> None:
    assert parse_tick("2026-08-21T14:30:00+02:00") == datetime(2026, 8, 21, 12, 30, tzinfo=UTC)
    assert parse_tick("2026-08-21T12:30") == datetime(2026, 8, 21, 12, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected ISO 8601"):
        parse_tick("next tuesday")


def test_catchup_latest_runs_the_newest_and_skips_the_rest() -> None:
    schedule = Schedule("*/10 * * * *", catchup="latest")
    recorded = {at(26, 12, 0)}

    plan = plan_catchup(schedule, recorded, since=at(26, 12, 0), until=at(26, 12, 40))

    assert plan == CatchupPlan(
        run=[at(26, 12, 40)], skip=[at(26, 12, 10), at(26, 12, 20), at(26, 12, 30)]
    )


def test_catchup_latest_skips_ticks_older_than_one_that_ran() -> None:
    schedule = Schedule("*/10 * * * *", catchup="latest")
    recorded = {at(26, 12, 0), at(26, 12, 30)}  # 12:30 ran after the gap (a scheduler restart)

    plan = plan_catchup(schedule, recorded, since=at(26, 12, 0), until=at(26, 12, 30))

    assert plan == CatchupPlan(run=[], skip=[at(26, 12, 10), at(26, 12, 20)])


def test_catchup_all_runs_every_missing_tick_up_to_the_bound() -> None:
    schedule = Schedule("*/15 * * * *", catchup="all", max_catchup=2)

    plan = plan_catchup(schedule, {at(26, 12, 0)}, since=at(26, 12, 0), until=at(26, 12, 45))

    assert plan == CatchupPlan(run=[at(26, 12, 30), at(26, 12, 45)], skip=[at(26, 12, 15)])


def test_nothing_missing_plans_nothing() -> None:
    schedule = Schedule("*/15 * * * *", catchup="all")

    plan = plan_catchup(
        schedule, {at(26, 12, 0), at(26, 12, 15)}, since=at(26, 12, 0), until=at(26, 12, 20)
    )

    assert plan == CatchupPlan([], [])


def test_the_scheduler_runs_in_utc_whatever_the_host_zone() -> None:
    code = "import actors, pendulum; print(pendulum.now().timezone_name)"
    result = subprocess.run(
        [sys.executable, "-c", code], env={"TZ": "Europe/Paris", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip

    assert result.stdout.strip() == "UTC"


def test_a_bad_schedule_override_stops_start_up_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import actors"],
        env={"TASKPIPES_SCHEDULE_GITHUB_TOP": "*/5 * * * * *", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True,
    )  # fmt: skip

    assert result.returncode != 0
    assert (
        "TASKPIPES_SCHEDULE_GITHUB_TOP: cron string '*/5 * * * * *' has 6 fields" in result.stderr
    )
