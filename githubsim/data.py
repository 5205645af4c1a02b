"""Load the bundled GitHub top-100 snapshot CSV into plain, typed records.

The simulator's whole world is this file: three daily snapshots of the most-starred
repositories. Everything else (star curves, stargazers, JSON) is derived from it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

# The snapshot shipped as package data (see pyproject's package-data).
SNAPSHOT_FILE = "github-top100-stars-2026-08.csv"


@dataclass(frozen=True)
class DaySnapshot:
    """One repository as seen on one snapshot day (00:00 UTC)."""

    day: int  # epoch seconds of the snapshot day at 00:00 UTC
    stars: int
    forks: int
    open_issues: int
    language: str | None
    pushed_at: str
    description: str | None


@dataclass(frozen=True)
class RepoRecord:
    """All snapshots of one repository, oldest first, under its original name."""

    full_name: str
    snapshots: tuple[DaySnapshot, ...]


def day_epoch(date_text: str) -> int:
    """Epoch seconds of a YYYY-MM-DD day at 00:00 UTC."""
    day = datetime.strptime(date_text, "%Y-%m-%d").replace(tzinfo=UTC)
    return int(day.timestamp())


def parse_row(row: dict[str, str]) -> DaySnapshot:
    return DaySnapshot(
        day=day_epoch(row["snapshot_date"]),
        stars=int(row["stars"]),
        forks=int(row["forks"]),
        open_issues=int(row["open_issues"]),
        language=row["language"] or None,
        pushed_at=row["pushed_at"],
        description=row["description"] or None,
    )


def parse_snapshots(csv_text: str) -> list[RepoRecord]:
    """Group CSV rows by repository (case-insensitive name), snapshots sorted by day."""
    grouped: dict[str, tuple[str, list[DaySnapshot]]] = {}
    for row in csv.DictReader(io.StringIO(csv_text)):
        key = row["full_name"].lower()
        name, days = grouped.setdefault(key, (row["full_name"], []))
        days.append(parse_row(row))
    return [
        RepoRecord(full_name=name, snapshots=tuple(sorted(days, key=lambda s: s.day)))
        for name, days in grouped.values()
    ]


def load_repos() -> list[RepoRecord]:
    """Read the bundled snapshot CSV."""
    text = resources.files(__package__).joinpath(SNAPSHOT_FILE).read_text(encoding="utf-8")
    return parse_snapshots(text)
