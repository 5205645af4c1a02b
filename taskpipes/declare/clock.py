"""The one clock of the kit and its applications: an aware UTC datetime, read in one place.

Every wall-clock reading goes through `now()`, so run records, tick ages, page times and
rate-limit waits agree with each other, and a test that moves time (time-machine patches
`datetime.now` underneath) moves all of them at once. Durations use `time.monotonic`, which
is not a wall clock; the GitHub simulator keeps its own simulated clock.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current moment, timezone-aware in UTC."""
    return datetime.now(UTC)
