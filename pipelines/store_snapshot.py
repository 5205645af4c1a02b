"""store: write snapshots idempotently, in the caller's transaction.

One tick is the usual unit; re-storing many ticks from kept raw answers goes through the
same code as one big batch, which takes the COPY path on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Repository, Snapshot
from pipelines.records import RepoSnapshot
from taskpipes.store.upsert import upsert


@dataclass(frozen=True)
class TickSnapshot:
    """The validated top list of one tick."""

    tick: datetime
    records: Sequence[RepoSnapshot]


def store_snapshot(
    session: Session, tick: datetime, records: Sequence[RepoSnapshot], now: datetime
) -> int:
    """Store one tick; see store_snapshots."""
    return store_snapshots(session, [TickSnapshot(tick, records)], now)


def store_snapshots(session: Session, snapshots: Sequence[TickSnapshot], now: datetime) -> int:
    """Upsert the repositories (a rename updates the name) and the snapshot rows.

    Storing the same ticks again rewrites the same values, so the database ends as it was.
    Returns the number of snapshot rows written.
    """
    ordered = sorted(snapshots, key=lambda s: s.tick)
    upsert_repositories(session, ordered)
    return upsert(
        session,
        Snapshot.__table__,
        _snapshot_rows(ordered, now),
        key=("repo_id", "tick"),
        # stored_at moves with a re-store, so the incremental rollup sees corrected values.
        update=("rank", "stars", "forks", "open_issues", "stored_at"),
    )


def _snapshot_rows(snapshots: Sequence[TickSnapshot], now: datetime) -> Iterator[dict[str, object]]:
    for snapshot in snapshots:
        for r in snapshot.records:
            yield {
                "repo_id": r.id,
                "tick": snapshot.tick,
                "rank": r.rank,
                "stars": r.stars,
                "forks": r.forks,
                "open_issues": r.open_issues,
                "stored_at": now,
            }


def upsert_repositories(session: Session, snapshots: Sequence[TickSnapshot]) -> None:
    """Each repository as its newest tick in the batch saw it; `snapshots` oldest first."""
    first_seen: dict[int, datetime] = {}
    newest: dict[int, dict[str, object]] = {}
    for snapshot in snapshots:
        for r in snapshot.records:
            first_seen.setdefault(r.id, snapshot.tick)
            newest[r.id] = {
                "id": r.id,
                "full_name": r.full_name,
                "description": r.description,
                "language": r.language,
                "license": r.license,
                "first_seen": first_seen[r.id],
                "last_seen": snapshot.tick,
            }
    # One lock order for concurrent writers.
    rows = [newest[repo_id] for repo_id in sorted(newest)]
    newer = _seen_later(session, rows)
    # A late re-run of an old tick must not rename a repository back to its old name.
    upsert(
        session,
        Repository.__table__,
        [r for r in rows if r["id"] not in newer],
        key=("id",),
        update=("full_name", "description", "language", "license", "last_seen"),
    )
    upsert(
        session, Repository.__table__, [r for r in rows if r["id"] in newer], key=("id",), update=()
    )


def _seen_later(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """Ids whose stored last_seen is after the batch's own newest tick for them."""
    if not rows:
        return set()
    stored = session.execute(
        select(Repository.id, Repository.last_seen).where(
            Repository.id.in_([r["id"] for r in rows])
        )
    )
    batch_seen = {r["id"]: r["last_seen"] for r in rows}
    return {repo_id for repo_id, last_seen in stored if last_seen > batch_seen[repo_id]}
