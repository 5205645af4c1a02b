"""Schedules: strict cron parsing, UTC ticks and the catch-up plan, with literals."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pendulum
import pytest
from periodiq import CronSpec

from taskpipes.declare.schedule import (
    CatchupPlan,
    Schedule,
    ScheduleError,
    floor_tick,
    parse_cron,
    parse_tick,
    periodic_option,
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


# The week of 2026-11-23 (a Monday) to 2026-11-29 (a Sunday), at midnight UTC.
WEEK = {name: at(23 + i, 0, 0) for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))}  # fmt: skip
# Weekday fields written in each way periodiq could misread, and the days they must fire on.
WEEKDAY_CASES = [
    ("0 0 * * 0", {"sun"}),
    ("0 0 * * sun", {"sun"}),
    ("@weekly", {"sun"}),
    ("0 0 * * 7", {"sun"}),
    ("0 0 * * 0-2", {"sun", "mon", "tue"}),
    ("0 0 * * sat,sun", {"sat", "sun"}),
    ("0 0 * * */2", {"sun", "tue", "thu", "sat"}),
    ("0 0 * * 1-5", {"mon", "tue", "wed", "thu", "fri"}),
]


def firing_days(spec: CronSpec) -> set[str]:
    """The days of WEEK periodiq's own check fires on (what its scheduler calls each minute)."""
    return {name for name, moment in WEEK.items() if spec.validate(moment)}


@pytest.mark.parametrize(("cron", "days"), WEEKDAY_CASES)
def test_the_periodic_option_fires_on_sunday_however_it_is_written(
    cron: str, days: set[str]
) -> None:
    assert firing_days(periodic_option(Schedule(cron))) == days


@pytest.mark.parametrize("cron", ["0 0 * * 7", "0 0 * * 0", "@weekly"])
def test_periodiq_sleeps_until_this_sunday_not_the_next(cron: str) -> None:
    # periodiq's scheduler sleeps until next_valid_date, which counts Sunday as 0.
    saturday = pendulum.datetime(2026, 11, 28, 0, 1, tz="UTC")

    assert periodic_option(Schedule(cron)).next_valid_date(saturday) == WEEK["sun"]


# Imports the actors with every scheduled pipeline overridden to CRON, and prints the days
# each periodic actor's own `periodic` option fires on.
ACTOR_DAYS = """
import json, actors, dramatiq
from tests.e2e.test_schedule import firing_days
print(json.dumps({a.actor_name: sorted(firing_days(a.options["periodic"]))
    for a in map(dramatiq.get_broker().get_actor, dramatiq.get_broker().get_declared_actors())
    if "schedule" in a.options and "periodic" in a.options}))
"""


@pytest.mark.parametrize(("cron", "days"), WEEKDAY_CASES)
def test_every_periodic_actor_fires_on_the_days_its_schedule_names(
    cron: str, days: set[str]
) -> None:
    import pipelines.catalog  # noqa: F401
    from taskpipes import registry

    pipelines = [pipeline.name for pipeline in registry.scheduled()]
    env = {f"TASKPIPES_SCHEDULE_{name.upper()}": cron for name in pipelines}
    env |= {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", ACTOR_DAYS], env=env, capture_output=True, text=True, check=True
    )

    fired = json.loads(result.stdout)
    assert set(fired) == {f"{name}_tick" for name in pipelines} >= {"github_top_tick"}
    assert all(set(actor_days) == days for actor_days in fired.values()), fired


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


# periodiq's scheduler loop on a host in Europe/Paris: it reads the clock with
# pendulum.now() (the local zone) and sleeps until next_valid_date. Prints the UTC ticks.
SCHEDULER_TICKS = """
import json, actors, dramatiq, pendulum
from datetime import datetime, timezone
spec = dramatiq.get_broker().get_actor("github_top_tick").options["periodic"]
start = datetime(2026, 3, 28, 0, 0, tzinfo=timezone.utc).timestamp()
now = pendulum.from_timestamp(start, tz=pendulum.local_timezone())
ticks = []
for _ in range(3):
    now = spec.next_valid_date(now)
    assert spec.validate(now)
    ticks.append(now.in_timezone("UTC").isoformat())
print(json.dumps(ticks))
"""


def test_ticks_are_utc_across_a_dst_change_on_a_host_in_another_zone() -> None:
    # Europe skipped 02:00-03:00 local time on 2026-03-29: a daily 02:30 tick in the host's
    # zone would move an hour, then go missing that night. In UTC it does neither.
    env = {"TZ": "Europe/Paris", "TASKPIPES_SCHEDULE_GITHUB_TOP": "30 2 * * *", "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", SCHEDULER_TICKS], env=env, capture_output=True, text=True, check=True
    )

    assert json.loads(result.stdout) == [
        "2026-03-28T02:30:00+00:00",
        "2026-03-29T02:30:00+00:00",
        "2026-03-30T02:30:00+00:00",
    ]


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
