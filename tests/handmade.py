"""A small hand-made history of top lists and the rollup results it must give."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from pipelines.records import RepoSnapshot
from pipelines.store_snapshot import store_snapshot


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Given: five repositories over an afternoon. C (3) leaves the top list at 12:20 and comes
# back at 12:40; D (4) and E (5) are only there at 11:50 and 12:50; B (2) is renamed at
# 12:40; nothing was stored for the tick 12:30; one old tick a week earlier.
HISTORY: dict[str, dict[int, int]] = {
    "2026-08-14 12:00": {1: 10, 2: 150},
    "2026-08-21 11:50": {1: 90, 2: 198, 3: 45, 4: 500, 5: 500},
    "2026-08-21 12:00": {1: 100, 2: 200, 3: 50},
    "2026-08-21 12:10": {1: 110, 2: 205, 3: 55},
    "2026-08-21 12:20": {1: 130, 2: 206},
    "2026-08-21 12:40": {1: 135, 2: 220, 3: 70},
    "2026-08-21 12:50": {1: 140, 2: 221, 3: 71, 4: 526, 5: 526},
}
RENAMED_AT = at("2026-08-21 12:40")
AS_OF = at("2026-08-21 13:00")

EXPECTED_BUCKETS = [
    (1, "2026-08-14 12:00", 10, None),
    (1, "2026-08-21 11:45", 90, 80),
    (1, "2026-08-21 12:00", 110, 20),
    (1, "2026-08-21 12:15", 130, 20),
    (1, "2026-08-21 12:30", 135, 5),
    (1, "2026-08-21 12:45", 140, 5),
    (2, "2026-08-14 12:00", 150, None),
    (2, "2026-08-21 11:45", 198, 48),
    (2, "2026-08-21 12:00", 205, 7),
    (2, "2026-08-21 12:15", 206, 1),
    (2, "2026-08-21 12:30", 220, 14),
    (2, "2026-08-21 12:45", 221, 1),
    (3, "2026-08-21 11:45", 45, None),
    (3, "2026-08-21 12:00", 55, 10),
    (3, "2026-08-21 12:30", 70, 15),
    (3, "2026-08-21 12:45", 71, 1),
    (4, "2026-08-21 11:45", 500, None),
    (4, "2026-08-21 12:45", 526, 26),
    (5, "2026-08-21 11:45", 500, None),
    (5, "2026-08-21 12:45", 526, 26),
]
# (rank, repo id, stars, stars_gained) per window, as of 13:00.
EXPECTED_TRENDING = {
    # Gains since before 12:00: A +50; D, E and C +26 (D and E have more stars; D's id is
    # lower); B +23.
    "1h": [(1, 1, 140, 50), (2, 4, 526, 26), (3, 5, 526, 26), (4, 3, 71, 26), (5, 2, 221, 23)],
    # Only A and B have a snapshot before 2026-08-20 13:00 (and before 2026-08-14 13:00).
    "24h": [(1, 1, 140, 130), (2, 2, 221, 71)],
    "7d": [(1, 1, 140, 130), (2, 2, 221, 71)],
}


def full_name(repo_id: int, tick: datetime) -> str:
    if repo_id == 2:
        return "b-owner/b-new" if tick >= RENAMED_AT else "b-owner/b"
    return f"owner{repo_id}/repo{repo_id}"


def records(tick: datetime, stars: dict[int, int]) -> list[RepoSnapshot]:
    ordered = sorted(stars.items(), key=lambda item: (-item[1], item[0]))
    return [
        RepoSnapshot(repo_id, full_name(repo_id, tick), rank, count, 1, 1, None, None, None)
        for rank, (repo_id, count) in enumerate(ordered, 1)
    ]


def store(session: Session, tick: datetime, stars: dict[int, int], stored_at: datetime) -> None:
    store_snapshot(session, tick, records(tick, stars), stored_at)


def expected_buckets() -> list[tuple]:
    return [
        (repo_id, at(start), stars, gained) for repo_id, start, stars, gained in EXPECTED_BUCKETS
    ]
