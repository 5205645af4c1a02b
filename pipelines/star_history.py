"""Stargazer pages in, daily cumulative star counts out. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.github_errors import InvalidPayload


@dataclass(frozen=True)
class Stargazer:
    """One star of the repository a page belongs to."""

    user_id: int
    starred_at: datetime


def parse_stargazers(payload: Any, where: str) -> list[Stargazer]:
    """The entries of one `application/vnd.github.star+json` page; `where` names the page."""
    if not isinstance(payload, list):
        raise InvalidPayload(f"{where}: expected a JSON list, got {type(payload).__name__}")
    return [_stargazer(entry, f"{where} entry {i}") for i, entry in enumerate(payload)]


def _stargazer(entry: Any, where: str) -> Stargazer:
    starred = entry.get("starred_at") if isinstance(entry, dict) else None
    if not isinstance(starred, str):
        raise InvalidPayload(f"{where}: no starred_at (was the star+json media type sent?)")
    user = entry.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise InvalidPayload(f"{where}: user.id must be a positive integer, got {user_id!r}")
    try:
        moment = datetime.fromisoformat(starred.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPayload(f"{where}: starred_at {starred!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise InvalidPayload(f"{where}: starred_at {starred!r} has no time zone")
    return Stargazer(user_id, moment.astimezone(UTC))


def day_of(moment: datetime) -> datetime:
    """00:00 UTC of the day `moment` falls in."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def daily_cumulative(starred: Sequence[datetime]) -> list[tuple[datetime, int]]:
    """Stars given by the end of each day, every day from the first star to the last."""
    if not starred:
        return []
    per_day = Counter(day_of(moment) for moment in starred)
    day, last = min(per_day), max(per_day)
    points, total = [], 0
    while day <= last:
        total += per_day.get(day, 0)
        points.append((day, total))
        day += timedelta(days=1)
    return points


def every(points: Sequence[tuple[datetime, int]], step_days: int) -> list[tuple[datetime, int]]:
    """Every `step_days`-th daily point from the first, and always the last one."""
    sampled = list(points[::step_days])
    if points and sampled[-1] != points[-1]:
        sampled.append(points[-1])
    return sampled
