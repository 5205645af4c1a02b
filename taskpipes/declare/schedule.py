"""Schedules: strict cron parsing, ticks, and the catch-up plan. Pure. Ticks are UTC.

A schedule may name an IANA time zone; its cron is then read on that zone's wall clock
(`ZonedSpec`), with these DST rules: a tick in the hour a spring-forward day skips runs
once, at the first valid minute after the gap; a tick in the hour a fall-back day repeats
runs once, on its first pass. periodiq knows only its process's local zone, so a zoned
schedule's actor is fired every minute and the tick actor keeps only the zoned ticks.

periodiq's own parser accepts a 6-field string silently and never fires on Sunday written
as 0; we validate first and hand periodiq a spec with Sunday as both 0 and 7 (its `validate`
checks ISO weekdays, Sunday 7; its `next_valid_date` counts Sunday as 0). `periodic_option`
is the one place that builds an actor's `periodic` option.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from periodiq import CronSpec

# A catch-up looks this far back at most, whatever the policy.
MAX_LOOKBACK = timedelta(days=8)
CATCHUP_POLICIES = ("latest", "all", "none")


class ScheduleError(ValueError):
    """A cron string or a catch-up policy that cannot be used; the message says which."""


@dataclass(frozen=True)
class Schedule:
    """When a pipeline runs and what to do about ticks missed while nothing ran."""

    cron: str
    catchup: str = "latest"
    max_catchup: int = 96
    # An IANA zone name ("Europe/Berlin") the cron is read in; None is UTC.
    timezone: str | None = None

    def __post_init__(self) -> None:
        if self.catchup not in CATCHUP_POLICIES:
            raise ScheduleError(
                f"catch-up policy must be one of {CATCHUP_POLICIES}, got {self.catchup!r}"
            )
        parse_cron(self.cron)
        if self.timezone is not None:
            zone(self.timezone)

    # Cached: a schedule is read on every readiness check and tick; a daily one's period
    # takes a couple of milliseconds to find.
    @cached_property
    def spec(self) -> CronSpec:
        cron = parse_cron(self.cron)
        return cron if self.timezone is None else ZonedSpec(cron, zone(self.timezone))

    @cached_property
    def period(self) -> timedelta:
        """The gap between two ticks (the shortest one, for irregular schedules)."""
        ticks = list(
            ticks_between(self.spec, datetime(2026, 1, 5, tzinfo=UTC), timedelta(days=8), 3)
        )
        return min(b - a for a, b in zip(ticks, ticks[1:], strict=False))


def parse_cron(text: str) -> CronSpec:
    """Parse a 5-field cron string or an @alias, refusing anything periodiq would misread."""
    fields = text.strip().split()
    if len(fields) == 1 and fields[0].startswith("@"):
        if fields[0] not in CronSpec._named_spec:
            raise ScheduleError(f"unknown cron alias {fields[0]!r}")
        fields = CronSpec._named_spec[fields[0]].split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron string {text!r} has {len(fields)} fields; expected 5 (minute hour day month weekday)"
        )
    try:
        spec = CronSpec.parse(" ".join(fields))
    except (ValueError, IndexError, KeyError) as exc:
        raise ScheduleError(f"invalid cron string {text!r}: {exc}") from None
    _check_ranges(text, spec)
    if {0, 7} & set(spec.dow):
        # periodiq's validate compares ISO weekdays (Sunday is 7), its next_valid_date
        # counts Sunday as 0: give it both, whichever way the string wrote Sunday.
        spec.setup(None, None, None, None, sorted(set(spec.dow) | {0, 7}))
    if not spec.minute or not spec.hour or not spec.dom or not spec.month or not spec.dow:
        raise ScheduleError(f"cron string {text!r} never fires")
    return spec


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin"
        ) from None


class ZonedSpec(CronSpec):  # type: ignore[misc]
    """A cron read on a zone's wall clock; `validate` takes a UTC minute (module doc: DST)."""

    def __init__(self, cron: CronSpec, tz: ZoneInfo) -> None:
        self.cron, self.tz = cron, tz

    def validate(self, date: datetime) -> bool:
        local = date.astimezone(self.tz)
        wall = local.replace(tzinfo=None)
        first_pass = wall.replace(fold=0, tzinfo=self.tz).astimezone(UTC)
        if local.fold == 1 and first_pass != date.astimezone(UTC):
            return False  # the second pass of a repeated hour: it ran on the first
        if self.cron.validate(wall):
            return True
        # The first minute after a spring-forward gap runs the ticks the gap swallowed.
        before = (date - timedelta(minutes=1)).astimezone(self.tz).replace(tzinfo=None)
        skipped = before + timedelta(minutes=1)
        while skipped < wall:
            if self.cron.validate(skipped):
                return True
            skipped += timedelta(minutes=1)
        return False


# Allowed values per cron field, in order.
FIELD_RANGES = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)


def _check_ranges(text: str, spec: CronSpec) -> None:
    values = (spec.minute, spec.hour, spec.dom, spec.month, spec.dow)
    for (name, low, high), field_values in zip(FIELD_RANGES, values, strict=True):
        bad = [v for v in field_values if not low <= v <= high]
        if bad:
            raise ScheduleError(f"cron string {text!r}: {name} {bad[0]} is outside {low}-{high}")


# Housekeeping and catch-up passes; an on-demand run's tick is the minute it was asked for.
EVERY_MINUTE = Schedule("* * * * *", catchup="none")


def periodic_option(schedule: Schedule) -> CronSpec:
    """The `periodic=` actor option periodiq sends ticks by; never `periodiq.cron(text)`.
    A zoned schedule fires every minute (module doc)."""
    return parse_cron(EVERY_MINUTE.cron if schedule.timezone else schedule.cron)


def matches(spec: CronSpec, moment: datetime) -> bool:
    return spec.validate(moment.astimezone(UTC))


def floor_tick(spec: CronSpec, moment: datetime) -> datetime:
    """The latest tick at or before `moment`."""
    tick = moment.astimezone(UTC).replace(second=0, microsecond=0)
    limit = tick - timedelta(days=400)
    while tick > limit:
        if matches(spec, tick):
            return tick
        tick -= timedelta(minutes=1)
    raise ScheduleError("schedule has no tick in the last 400 days")


def ticks_between(
    spec: CronSpec, start: datetime, span: timedelta, limit: int | None = None
) -> Iterator[datetime]:
    """Ticks in [start, start + span), oldest first."""
    tick = start.astimezone(UTC).replace(second=0, microsecond=0)
    if tick < start:
        tick += timedelta(minutes=1)
    end = start + span
    found = 0
    while tick < end and (limit is None or found < limit):
        if matches(spec, tick):
            found += 1
            yield tick
        tick += timedelta(minutes=1)


@dataclass(frozen=True)
class CatchupPlan:
    """Missed ticks to run now and ticks to record as skipped."""

    run: list[datetime]
    skip: list[datetime]


def plan_catchup(
    schedule: Schedule, recorded: set[datetime], since: datetime, until: datetime
) -> CatchupPlan:
    """Compare the ticks due in [since, until] with the recorded ones, per the policy.

    `since` is the first tick ever recorded (a new deployment does not backfill history);
    `until` leaves the scheduler's own recent ticks alone.
    """
    start = max(since, until - MAX_LOOKBACK)
    due = ticks_between(schedule.spec, start, until - start + timedelta(minutes=1))
    missing = [t for t in due if t not in recorded]
    if not missing:
        return CatchupPlan([], [])
    if schedule.catchup == "none":
        return CatchupPlan([], missing)
    if schedule.catchup == "latest":
        # A tick older than one that already ran is stale: only the present is worth fetching.
        newest = max(recorded, default=None)
        fresh = [t for t in missing if newest is None or t > newest]
        return CatchupPlan(fresh[-1:], [t for t in missing if t not in fresh[-1:]])
    return CatchupPlan(missing[-schedule.max_catchup :], missing[: -schedule.max_catchup])


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def parse_tick(text: str) -> datetime:
    """An ISO 8601 time; a time without zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: expected ISO 8601, e.g. 2026-08-21T12:30:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
