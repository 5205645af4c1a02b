"""Schedules in an IANA time zone: the DST rules, ticks in UTC, and periodiq's part."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskpipes import Pipeline, Schedule, Stage
from taskpipes.declare.schedule import ScheduleError, periodic_option, ticks_between
from taskpipes.runtime.current import current_broker, tick_actor
from taskpipes.store import runs
from taskpipes.store.database import begin

BERLIN = "Europe/Berlin"


def day_ticks(schedule: Schedule, day: datetime) -> list[datetime]:
    return list(ticks_between(schedule.spec, day, timedelta(days=1)))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_daily_tick_is_the_zone_s_wall_clock_time_stored_in_utc() -> None:
    nightly = Schedule("0 3 * * *", timezone=BERLIN)
    assert day_ticks(nightly, utc("2026-01-15 00:00")) == [utc("2026-01-15 02:00")]  # CET
    assert day_ticks(nightly, utc("2026-07-15 00:00")) == [utc("2026-07-15 01:00")]  # CEST


def test_spring_forward_a_tick_in_the_missing_hour_runs_once_at_the_next_valid_time() -> None:
    # 2026-03-29: Berlin's clocks jump from 02:00 to 03:00; 02:30 does not exist
    batch = Schedule("30 2 * * *", timezone=BERLIN)
    assert day_ticks(batch, utc("2026-03-29 00:00")) == [utc("2026-03-29 01:00")]  # 03:00 CEST
    # the days around it keep 02:30
    assert day_ticks(batch, utc("2026-03-28 00:00")) == [utc("2026-03-28 01:30")]
    assert day_ticks(batch, utc("2026-03-30 00:00")) == [utc("2026-03-30 00:30")]


def test_fall_back_a_tick_in_the_repeated_hour_runs_once() -> None:
    # 2026-10-25: Berlin's 02:00-03:00 happens twice (CEST, then CET)
    batch = Schedule("30 2 * * *", timezone=BERLIN)
    assert day_ticks(batch, utc("2026-10-25 00:00") - timedelta(hours=2)) == [
        utc("2026-10-25 00:30")  # the first 02:30 (CEST); the second, 01:30 UTC, does not run
    ]
    quarterly = Schedule("*/15 * * * *", timezone=BERLIN)
    ticks = list(ticks_between(quarterly.spec, utc("2026-10-24 23:00"), timedelta(hours=3)))
    walls = [t.astimezone(quarterly.spec.tz).strftime("%H:%M") for t in ticks]
    assert len(walls) == len(set(walls))  # no wall-clock time twice
    assert walls.count("02:30") == 1


def test_an_unknown_zone_is_refused_naming_it() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Europe/Berlinn'"):
        Schedule("0 3 * * *", timezone="Europe/Berlinn")


def test_periodiq_fires_a_zoned_schedule_every_minute_and_a_utc_one_as_written() -> None:
    assert periodic_option(Schedule("0 3 * * *", timezone=BERLIN)).minute == list(range(60))
    assert periodic_option(Schedule("0 3 * * *")).minute == [0]


def test_the_tick_actor_keeps_only_the_zoned_ticks_of_periodiq_s_minutes(
    app_env,
    sqlite_url,
    declared,
) -> None:
    # Given two zoned pipelines, one whose cron names this minute in Kolkata (UTC+05:30),
    # one whose cron names another minute
    app_env(sqlite_url)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minute = now.astimezone(Schedule("* * * * *", timezone="Asia/Kolkata").spec.tz).minute
    due, not_due = (
        Pipeline(
            name,
            stages=(Stage("only", lambda ctx: 1),),
            schedule=Schedule(f"{m} * * * *", timezone="Asia/Kolkata"),
        )
        for name, m in (("zoned_due", minute), ("zoned_not_due", (minute + 30) % 60))
    )
    declared(due, not_due)
    from taskpipes.runtime.runner import ensure_workers

    ensure_workers(current_broker())

    # When periodiq sends both tick actors this minute (as it does for a zoned schedule)
    for pipeline in (due, not_due):
        tick_actor(pipeline).send_with_options(scheduled_at=now.isoformat())
        current_broker().join(pipeline.queue_name)

    # Then only the pipeline whose zoned cron names this minute has a run, for this minute
    with begin() as session:
        assert runs.first_tick(session, "zoned_not_due") is None  # no run at all
        run = runs.find_run(session, "zoned_due", now)
    assert run is not None and run.tick == now
