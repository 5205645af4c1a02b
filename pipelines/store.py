"""store: write one tick's snapshot, idempotently, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Repository, Snapshot
from db.upsert import upsert
from pipelines.records import RepoSnapshot


def store_snapshot(
    session: Session, tick: datetime, records: Sequence[RepoSnapshot], now: datetime
) -> int:
    """Upsert the repositories (a rename updates the name) and the tick's snapshot rows.

    Storing the same tick again rewrites the same values, so the database ends as it was.
    Returns the number of snapshot rows written.
    """
    upsert_repositories(session, tick, records)
    return upsert(
        session,
        Snapshot.__table__,
        (snapshot_row(tick, record, now) for record in records),
        key=("repo_id", "tick"),
        update=("rank", "stars", "forks", "open_issues"),
    )


def upsert_repositories(session: Session, tick: datetime, records: Sequence[RepoSnapshot]) -> None:
    rows = [
        {
            "id": r.id,
            "full_name": r.full_name,
            "description": r.description,
            "language": r.language,
            "license": r.license,
            "first_seen": tick,
            "last_seen": tick,
        }
        for r in sorted(records, key=lambda r: r.id)  # one lock order for concurrent writers
    ]
    # A late re-run of an old tick must not rename a repository back to its old name.
    newer = set(
        session.scalars(
            select(Repository.id).where(
                Repository.id.in_([r["id"] for r in rows]), Repository.last_seen > tick
            )
        )
    )
    upsert(
        session,
        Repository.__table__,
        [r for r in rows if r["id"] not in newer],
        key=("id",),
        update=("full_name", "description", "language", "license", "last_seen"),
    )
    upsert(session, Repository.__table__, [r for r in rows if r["id"] in newer], key=("id",), update=())


def snapshot_row(tick: datetime, record: RepoSnapshot, now: datetime) -> dict[str, object]:
    return {
        "repo_id": record.id,
        "tick": tick,
        "rank": record.rank,
        "stars": record.stars,
        "forks": record.forks,
        "open_issues": record.open_issues,
        "stored_at": now,
    }
